"""Docs are tested: every command, option, spec field and API route is documented,
and the spec example in the docs is the one `slokit init` writes."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import typer.main
from pydantic import BaseModel

from slokit.cli import app
from slokit.spec import v1

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _commands() -> list[tuple[str, Any]]:
    # typer may bring its own click: look for groups by shape, not by class
    root: Any = typer.main.get_command(app)
    out = []
    for name, cmd in root.commands.items():
        if hasattr(cmd, "commands"):
            out += [(f"{name} {sub}", c) for sub, c in cmd.commands.items()]
        else:
            out.append((name, cmd))
    return out


@pytest.mark.parametrize(("name", "cmd"), _commands(), ids=[n for n, _ in _commands()])
def test_every_command_and_option_is_in_the_cli_docs(name: str, cmd: Any) -> None:
    text = (DOCS / "cli.md").read_text()
    assert f"## `slokit {name}" in text
    section = text.split(f"## `slokit {name}", 1)[1].split("\n## ", 1)[0]
    for param in cmd.params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--"):
                assert opt in section, f"{opt} of `slokit {name}` is not documented"


def _fields(model: type[BaseModel], seen: set[str]) -> set[str]:
    names = set()
    for field_name, info in model.model_fields.items():
        names.add(info.alias or field_name)
        for arg in re.findall(r"\b[A-Z]\w+\b", str(info.annotation)):
            sub = getattr(v1, arg, None)
            if isinstance(sub, type) and issubclass(sub, BaseModel) and arg not in seen:
                seen.add(arg)
                names |= _fields(sub, seen)
    return names


def test_every_spec_field_is_in_the_spec_docs() -> None:
    text = (DOCS / "spec.md").read_text()
    missing = sorted(f for f in _fields(v1.SpecV1, set()) if f"`{f}`" not in text)
    assert missing == []


def test_the_spec_docs_show_exactly_the_init_example() -> None:
    example = resources.files("slokit.spec").joinpath("example.yaml").read_text()
    assert f"```yaml\n{example}```" in (DOCS / "spec.md").read_text()


def test_every_api_route_is_in_the_api_docs(tmp_path: Path) -> None:
    from slokit.server.app import ServerConfig, create_app

    application = create_app(ServerConfig(db=tmp_path / "x.duckdb"))
    text = (DOCS / "api.md").read_text()
    for route in application.routes:
        for method in sorted(getattr(route, "methods", None) or []):
            if method != "HEAD":
                assert f"`{method} {route.path}" in text, f"{method} {route.path}"
    application.state.server.close()


def test_the_readme_names_the_two_commands_and_ci_runs_the_test_one() -> None:
    root = DOCS.parent
    readme = (root / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (root / ".ci" / "run").read_text()
