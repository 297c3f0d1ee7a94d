"""CATE models: cross-fitted econml meta-learners and their predictions."""

from pex_tuner.effects.cate import (
    LEARNERS,
    CateModel,
    default_base_learner,
    fingerprint,
    fit_effects,
)
from pex_tuner.effects.predictions import EffectPredictions

__all__ = [
    "LEARNERS",
    "CateModel",
    "EffectPredictions",
    "default_base_learner",
    "fingerprint",
    "fit_effects",
]
