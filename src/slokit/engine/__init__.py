"""spec + store + clock -> statuses."""

from slokit.engine.evaluate import Evaluator, evaluate
from slokit.engine.status import ErrorBudget, Status

__all__ = ["ErrorBudget", "Evaluator", "Status", "evaluate"]
