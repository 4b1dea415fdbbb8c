"""slokit's exceptions.

One base class; every error slokit raises on purpose derives from it, so a caller can
catch `SlokitError` and print its message, which already says where and what to do.

    SlokitError
    ├── SpecError          a spec file is invalid (file, line, field path, fix)
    ├── InputError         an input file or request body cannot be read at all
    ├── StoreError         the event store cannot be opened or written
    └── EvaluationError    a status cannot be computed (unknown SLO, bad time)

Record-level problems in ingested data are not exceptions: they come back as
`Rejection`s beside the accepted records (see `slokit.events.validate`).
"""

from __future__ import annotations


class SlokitError(Exception):
    """Base of every error slokit raises on purpose."""


class SpecError(SlokitError):
    """A spec is invalid. `problems` holds one message per problem found."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class InputError(SlokitError):
    """An input (file, HTTP body) cannot be read as a whole."""


class StoreError(SlokitError):
    """The event store cannot be opened or written."""


class EvaluationError(SlokitError):
    """A status cannot be computed."""
