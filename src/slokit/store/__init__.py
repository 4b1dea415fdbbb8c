"""Event stores. DuckDB (embedded, the default) is the one that exists today."""

from slokit.store.definitions import CountDef, for_slo
from slokit.store.duckdb_store import DEFAULT_PATH, AppendResult, DuckDBStore, Rollup
from slokit.store.segments import copy_store, remove_store

__all__ = [
    "DEFAULT_PATH",
    "AppendResult",
    "CountDef",
    "DuckDBStore",
    "Rollup",
    "copy_store",
    "for_slo",
    "remove_store",
]
