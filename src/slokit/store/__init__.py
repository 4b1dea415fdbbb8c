"""Event stores. DuckDB (embedded, the default) is the one that exists today."""

from slokit.store.definitions import CountDef, for_slo
from slokit.store.duckdb_store import DEFAULT_PATH, AppendResult, DuckDBStore, Rollup

__all__ = ["DEFAULT_PATH", "AppendResult", "CountDef", "DuckDBStore", "Rollup", "for_slo"]
