"""The public surface is exactly `__all__`, and every name in it exists."""

import slokit


def test_all_exports_exist_and_are_public() -> None:
    for name in slokit.__all__:
        assert hasattr(slokit, name), name
    public = {n for n in dir(slokit) if not n.startswith("_")} - {
        # subpackages become attributes when imported; they are not API names
        "core",
        "engine",
        "errors",
        "events",
        "ingest",
        "spec",
        "store",
        "render",
        "cli",
        "cli_common",
        "cli_alerting",
        "cli_sla",
        "cli_cost",
        "sla",
        "cost",
        "server",
        "demo",
        "alerting",
        "httpwire",
        "gateway",
        "cli_gateway",
        "fakellm",
        "cli_fakellm",
    }
    assert public == set(slokit.__all__) - {"__version__"}
