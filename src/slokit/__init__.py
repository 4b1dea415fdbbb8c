"""slokit: service level objectives and agreements for AI inference services.

import slokit
spec = slokit.load_spec("slokit.yaml")
with slokit.DuckDBStore("slokit.duckdb") as store:
    for status in slokit.evaluate(spec, store, at):
        print(status.slo, status.sli, status.error_budget.remaining)
"""

from slokit.engine import ErrorBudget, Evaluator, Status, evaluate
from slokit.errors import EvaluationError, InputError, SlokitError, SpecError, StoreError
from slokit.events.validate import Rejection, validate, validate_records
from slokit.ingest import IngestReport, ingest_file
from slokit.spec import Spec
from slokit.spec import load as load_spec
from slokit.spec import loads as loads_spec
from slokit.store import DuckDBStore

__version__ = "0.1.0"

__all__ = [
    "DuckDBStore",
    "ErrorBudget",
    "EvaluationError",
    "Evaluator",
    "IngestReport",
    "InputError",
    "Rejection",
    "SlokitError",
    "Spec",
    "SpecError",
    "Status",
    "StoreError",
    "__version__",
    "evaluate",
    "ingest_file",
    "load_spec",
    "loads_spec",
    "validate",
    "validate_records",
]
