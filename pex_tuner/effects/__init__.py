"""CATE models: cross-fitted econml meta-learners, their predictions, learner selection."""

from pex_tuner.effects.cate import (
    LEARNERS,
    CateModel,
    default_base_learner,
    fingerprint,
    fit_effects,
)
from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.effects.selection import (
    LearnerSelection,
    dr_pseudo_outcomes,
    score_learners,
    select_learner,
)

__all__ = [
    "LEARNERS",
    "CateModel",
    "EffectPredictions",
    "LearnerSelection",
    "default_base_learner",
    "dr_pseudo_outcomes",
    "fingerprint",
    "fit_effects",
    "score_learners",
    "select_learner",
]
