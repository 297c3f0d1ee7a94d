"""Offline and online tuning: Ax experiments over utility weights and biases.

Modules, in the order a tuning run uses them:

* ``config``: TunerConfig, the offline tuner's options, checked before anything is fitted;
* ``space``: PolicySpace, the tuned parameters and their ranges;
* ``metric``: OPEMetric, policies in, (mean, sem) per outcome out;
* ``generation`` and ``acquisition``: Sobol then a BoTorch acquisition (qLogNParEGO by default;
  qLogNParEGOHV, the hypervolume-scalarized ParEGO);
* ``ax_bridge``: the only module that touches Ax;
* ``frontier`` and ``evaluations``: Pareto masks, hypervolume, candidate subsets; the log of
  evaluated policies;
* ``offline``: OfflineTuner; ``storage``: its saved pieces (directory or SQL);
* ``trials``, ``replay`` and ``online``: the online trial state machine, its Ax replay, and
  OnlineTuner.

Importing this package does not import Ax; the tuners import it when they first need it.
"""

from pex_tuner.tuning.config import TunerConfig
from pex_tuner.tuning.evaluations import EvaluationLog
from pex_tuner.tuning.frontier import hypervolume, pareto_mask, select_subset
from pex_tuner.tuning.generation import ACQUISITIONS, make_generation_strategy
from pex_tuner.tuning.metric import OPEMetric
from pex_tuner.tuning.offline import OfflineTuner
from pex_tuner.tuning.space import PolicySpace

__all__ = [
    "ACQUISITIONS",
    "EvaluationLog",
    "OPEMetric",
    "OfflineTuner",
    "PolicySpace",
    "TunerConfig",
    "hypervolume",
    "make_generation_strategy",
    "pareto_mask",
    "select_subset",
]
