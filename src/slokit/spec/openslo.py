"""OpenSLO v1 import and export, file level.

`export_openslo(spec)` writes a slokit spec as OpenSLO v1 documents: one Service, then an
SLI and an SLO per slokit SLO (`openslo_export` maps one SLO). `import_openslo(text)`
reads OpenSLO v1 documents: parse -> check each document -> index by kind -> map each
SLO (`openslo_import`) -> check the result with `slokit.spec.loads`. Both return notes,
one sentence per thing that did not map; an export imports back to the same SLOs.
The mapping, and what does not map, is in docs/openslo.md.
"""

from __future__ import annotations

from typing import Any

import yaml

from slokit.errors import SpecError
from slokit.spec import model, v1
from slokit.spec.load import loads
from slokit.spec.openslo_export import (
    API_VERSION,
    RFC1123,
    document,
    dump_yaml,
    name_note,
    slo_documents,
)
from slokit.spec.openslo_import import ALERTING, Doc, slo_to_v1

__all__ = ["export_openslo", "import_openslo"]

NOT_IMPORTED = {
    "DataSource": "slokit evaluates SLIs from its own event store",
    "AlertPolicy": ALERTING,
    "AlertCondition": ALERTING,
    "AlertNotificationTarget": ALERTING,
}
KINDS = ("SLO", "SLI", "Service", *NOT_IMPORTED)
IMPORT_HEADER = (
    "# slokit spec imported from OpenSLO v1 by `slokit openslo import`.\n"
    "# The notes printed by the import list what did not map; check: slokit validate\n"
)


def export_openslo(spec: model.Spec) -> tuple[str, list[str]]:
    """OpenSLO v1 YAML (`---` separated Service, SLI, SLO documents) and notes."""
    notes = [] if RFC1123.match(spec.service) else [name_note("Service", spec.service)]
    body = {"description": spec.description} if spec.description else {}
    docs = [document("Service", {"name": spec.service}, body)]
    for slo in spec.slos:
        docs.extend(slo_documents(slo, notes))
    header = (
        f"# OpenSLO v1 documents exported by slokit from service {spec.service}.\n"
        "# Indicators use metricSource type `slokit`: only slokit evaluates them.\n"
    )
    return header + dump_yaml(docs), notes


def import_openslo(text: str) -> tuple[str, list[str]]:
    """slokit/v1 YAML for the OpenSLO documents in `text`, and notes on what did not map."""
    notes: list[str] = []
    slis: dict[str, Doc] = {}
    slos: list[Doc] = []
    services: list[Doc] = []
    for doc in _parse(text):
        if doc.kind == "SLI":
            if doc.name in slis:
                raise doc.fail("metadata.name", "a second SLI with this name")
            slis[doc.name] = doc
        elif doc.kind == "SLO":
            slos.append(doc)
        elif doc.kind == "Service":
            services.append(doc)
        else:
            notes.append(f"{doc.label}: not imported; {NOT_IMPORTED[doc.kind]}")
    if not slos:
        raise SpecError("no SLO documents: a slokit spec needs at least one `kind: SLO`")
    service = _service(slos, services)
    out: dict[str, Any] = {"apiVersion": v1.API_VERSION, "service": service}
    for s in services:
        if s.name != service:
            notes.append(f"{s.label}: not imported; no SLO in this file belongs to it")
        elif isinstance(s.data.get("spec"), dict) and s.spec.get("description"):
            out["description"] = str(s.spec["description"])
    out["slos"] = [slo for doc in slos for slo in slo_to_v1(doc, slis, notes)]
    result = IMPORT_HEADER + dump_yaml([out], explicit_start=False)
    try:
        loads(result, source="<imported from OpenSLO>")
    except SpecError as exc:
        raise SpecError(
            f"the OpenSLO documents convert to an invalid slokit spec: {exc}", exc.problems
        ) from exc
    return result, notes


def _parse(text: str) -> list[Doc]:
    docs: list[Doc] = []
    n = 0
    try:
        for n, data in enumerate(yaml.safe_load_all(text), 1):
            if data is not None:
                docs.append(_check(n, data))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"document {n + 1}: not valid YAML{where}: {problem}") from exc
    return docs


def _check(n: int, data: Any) -> Doc:
    if not isinstance(data, dict):
        raise SpecError(
            f"document {n}: expected a mapping with apiVersion, kind, metadata "
            f"and spec, got {type(data).__name__}"
        )
    kind, meta = data.get("kind"), data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    label = f"{kind}/{name}" if kind and name else f"document {n}"
    version = data.get("apiVersion")
    if version != API_VERSION:
        hint = "; this is already a slokit spec" if version == v1.API_VERSION else ""
        raise SpecError(f"{label}: apiVersion: expected {API_VERSION!r}, got {version!r}{hint}")
    if kind not in KINDS:
        raise SpecError(
            f"{label}: kind: unknown kind {kind!r}; OpenSLO v1 kinds: " + ", ".join(KINDS)
        )
    if not isinstance(name, str) or not name:
        raise SpecError(f"document {n} ({kind}): metadata.name: required field is missing")
    return Doc(kind, name, data)


def _service(slos: list[Doc], services: list[Doc]) -> str:
    """The one service the SLOs belong to: a slokit spec describes one service."""
    first: tuple[str, Doc] | None = None
    for doc in slos:
        name = doc.spec.get("service")
        if name is None and len(services) == 1:
            name = services[0].name
        if not isinstance(name, str) or not name:
            raise doc.fail("spec.service", "required field is missing")
        if first is None:
            first = (name, doc)
        elif name != first[0]:
            raise doc.fail(
                "spec.service",
                f"{name!r} differs from {first[0]!r} of {first[1].label}; a slokit spec holds "
                "one service, so split the file per service",
            )
    assert first is not None
    return first[0]
