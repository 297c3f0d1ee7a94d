"""One exception tree for pex-tuner.

Every class also inherits the matching builtin, so existing ``except ValueError`` clauses
keep working::

    PexTunerError
    ├── InputDataError(ValueError)        bad experiment data: columns, values, arms
    ├── ConfigurationError(ValueError)    a parameter outside its allowed values
    ├── SchemaMismatchError(ValueError)   new units that do not match a fitted feature schema
    ├── NotFittedError(AttributeError)    a learner used before ``fit``
    └── ResultConflictError(ValueError)   a result contradicting one already recorded
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "InputDataError",
    "NotFittedError",
    "PexTunerError",
    "ResultConflictError",
    "SchemaMismatchError",
]


class PexTunerError(Exception):
    """Base class of every error raised by pex-tuner on purpose."""


class InputDataError(PexTunerError, ValueError):
    """The logged experiment (or a frame of new units) is not usable as given.

    The message names the column or field and says what was expected.
    """


class ConfigurationError(PexTunerError, ValueError):
    """A parameter has a value outside the allowed set or range."""


class SchemaMismatchError(InputDataError):
    """New units do not match the feature schema the model was fitted on."""


class NotFittedError(PexTunerError, AttributeError):
    """A learner was used before ``fit`` was called."""


class ResultConflictError(PexTunerError, ValueError):
    """A result that contradicts one already recorded for the same trial (HTTP 409)."""
