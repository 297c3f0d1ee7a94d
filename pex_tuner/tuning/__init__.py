"""Offline tuning: an Ax experiment over utility weights and biases, evaluated by OPE.

Importing this package does not import Ax; the tuner imports it when it first needs it.
"""

from pex_tuner.tuning.frontier import hypervolume, pareto_mask, select_subset
from pex_tuner.tuning.generation import ACQUISITIONS, make_generation_strategy
from pex_tuner.tuning.metric import OPEMetric
from pex_tuner.tuning.space import PolicySpace
from pex_tuner.tuning.tuner import OfflineTuner

__all__ = [
    "ACQUISITIONS",
    "OPEMetric",
    "OfflineTuner",
    "PolicySpace",
    "hypervolume",
    "make_generation_strategy",
    "pareto_mask",
    "select_subset",
]
