"""Off-policy evaluation: IPS, SNIPS, direct method and doubly robust, batched and chunked."""

from pex_tuner.ope.estimators import ESTIMATORS
from pex_tuner.ope.evaluate import (
    PolicyEvaluation,
    evaluate,
    evaluate_assignments,
    evaluate_linear_policies,
)

__all__ = [
    "ESTIMATORS",
    "PolicyEvaluation",
    "evaluate",
    "evaluate_assignments",
    "evaluate_linear_policies",
]
