"""pex-tuner: personalized experimentation from one logged randomized experiment.

The flow (see README, "Architecture"): ``data`` (ExperimentData) -> ``effects`` (cross-fitted
CATE models) -> ``policies`` (LinearUtilityPolicy) -> ``ope`` (IPS / SNIPS / DM / DR, batched).

Importing this package is quick: submodules that pull heavy dependencies (econml, numba) load on
first use of a name that needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "ExperimentData": "pex_tuner.data",
    "DataSplit": "pex_tuner.data",
    "FeatureSchema": "pex_tuner.schema",
    "PexTunerError": "pex_tuner.errors",
    "InputDataError": "pex_tuner.errors",
    "ConfigurationError": "pex_tuner.errors",
    "SchemaMismatchError": "pex_tuner.errors",
    "NotFittedError": "pex_tuner.errors",
    "ExperimentWithTruth": "pex_tuner.datasets",
    "make_synthetic": "pex_tuner.datasets",
    "make_synthetic_a": "pex_tuner.datasets",
    "make_covid": "pex_tuner.datasets",
    "load_hillstrom": "pex_tuner.datasets",
    "load_ihdp": "pex_tuner.datasets",
    "OnlineSimulator": "pex_tuner.datasets",
    "LaunchedPolicy": "pex_tuner.launch",
    "launch_policy": "pex_tuner.launch",
    "backtest": "pex_tuner.launch",
    "CateModel": "pex_tuner.effects",
    "EffectPredictions": "pex_tuner.effects",
    "fit_effects": "pex_tuner.effects",
    "select_learner": "pex_tuner.effects",
    "LearnerSelection": "pex_tuner.effects",
    "DistillHTE": "pex_tuner.explain",
    "LinearUtilityPolicy": "pex_tuner.policies",
    "PolicyArtifact": "pex_tuner.policies",
    "TreePolicy": "pex_tuner.policies",
    "GreedyTreePolicyLearner": "pex_tuner.policies",
    "DistillPolicyLearner": "pex_tuner.policies",
    "GuidanceTreeLearner": "pex_tuner.policies",
    "NoHTEGreedyPolicyLearner": "pex_tuner.policies",
    "NoHTEIterativePolicyLearner": "pex_tuner.policies",
    "PolicyLearner": "pex_tuner.policies",
    "distill_linear_policy": "pex_tuner.workflows.distill",
    "learn_policy": "pex_tuner.workflows.learn_policy",
    "OfflineTuner": "pex_tuner.tuning",
    "OPEMetric": "pex_tuner.tuning",
    "PolicyEvaluation": "pex_tuner.ope",
    "evaluate": "pex_tuner.ope",
    "evaluate_linear_policies": "pex_tuner.ope",
}

__all__ = [
    "CateModel",
    "ConfigurationError",
    "DataSplit",
    "DistillHTE",
    "DistillPolicyLearner",
    "EffectPredictions",
    "ExperimentData",
    "ExperimentWithTruth",
    "FeatureSchema",
    "GreedyTreePolicyLearner",
    "GuidanceTreeLearner",
    "InputDataError",
    "LaunchedPolicy",
    "LearnerSelection",
    "LinearUtilityPolicy",
    "NoHTEGreedyPolicyLearner",
    "NoHTEIterativePolicyLearner",
    "NotFittedError",
    "OPEMetric",
    "OfflineTuner",
    "OnlineSimulator",
    "PexTunerError",
    "PolicyArtifact",
    "PolicyEvaluation",
    "PolicyLearner",
    "SchemaMismatchError",
    "TreePolicy",
    "__version__",
    "backtest",
    "distill_linear_policy",
    "evaluate",
    "evaluate_linear_policies",
    "fit_effects",
    "launch_policy",
    "learn_policy",
    "load_hillstrom",
    "load_ihdp",
    "make_covid",
    "make_synthetic",
    "make_synthetic_a",
    "select_learner",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pex_tuner' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from pex_tuner.data import DataSplit, ExperimentData
    from pex_tuner.datasets import (
        ExperimentWithTruth,
        OnlineSimulator,
        load_hillstrom,
        load_ihdp,
        make_covid,
        make_synthetic,
        make_synthetic_a,
    )
    from pex_tuner.effects import (
        CateModel,
        EffectPredictions,
        LearnerSelection,
        fit_effects,
        select_learner,
    )
    from pex_tuner.errors import (
        ConfigurationError,
        InputDataError,
        NotFittedError,
        PexTunerError,
        SchemaMismatchError,
    )
    from pex_tuner.explain import DistillHTE
    from pex_tuner.launch import LaunchedPolicy, backtest, launch_policy
    from pex_tuner.ope import PolicyEvaluation, evaluate, evaluate_linear_policies
    from pex_tuner.policies import (
        DistillPolicyLearner,
        GreedyTreePolicyLearner,
        GuidanceTreeLearner,
        LinearUtilityPolicy,
        NoHTEGreedyPolicyLearner,
        NoHTEIterativePolicyLearner,
        PolicyArtifact,
        PolicyLearner,
        TreePolicy,
    )
    from pex_tuner.schema import FeatureSchema
    from pex_tuner.tuning import OfflineTuner, OPEMetric
    from pex_tuner.workflows.distill import distill_linear_policy
    from pex_tuner.workflows.learn_policy import learn_policy
