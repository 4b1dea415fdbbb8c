"""The SLO spec: versioned YAML in, validated domain model out."""

from slokit.spec.load import load, loads
from slokit.spec.model import SLI, SLO, Budgeting, Spec, WindowSpec

__all__ = ["SLI", "SLO", "Budgeting", "Spec", "WindowSpec", "load", "loads"]
