"""PolicyLearner: the one contract of every interpretable-policy learner (scikit-learn's).

Every learner (GreedyTreeSearch-HTE, Distill-Policy, No-HTE Greedy / Iterative, GUIDE) is used
the same way::

    learner = GreedyTreePolicyLearner(max_depth=2, outcome_weights=w)  # stores hyperparameters
    learner.fit(train, predictions)     # -> self; fitted attributes end in '_'
    learner.policy_                     # the learned TreePolicy
    learner.predict(frame)              # arm labels, object ndarray of shape (n_units,)

- ``__init__`` is keyword-only and only stores its arguments; :meth:`get_params`,
  :meth:`set_params` and ``repr`` read them from its signature.
- ``_parameter_constraints`` declares the allowed values of each hyperparameter once; ``fit``
  checks them first (:func:`pex_tuner.checks.validate_params`), before any work, with the
  uniform message "The 'max_depth' parameter must be an int in the range [0, 20]. Got -1
  instead.".
- ``fit(data, predictions=None)``: ``data`` is the logged experiment (an ExperimentData: raw
  features, arms, outcomes, propensities); ``predictions`` are CATE predictions for exactly
  its units (EffectPredictions, out-of-fold when the model saw them). HTE learners need
  them, No-HTE learners ignore them (as scikit-learn's unsupervised ``fit(X, y=None)``), GUIDE
  uses them for doubly robust scores and falls back to IPS without.

Why the extra inputs are constructor parameters. Two learners need more than data and
predictions: Distill-Policy copies a *teacher* policy, and GUIDE combines two *input policies*.
Both are given to ``__init__`` (``teacher=``, ``policies=``), as scikit-learn's meta-estimators
take ``estimator=``: they say *what* the learner learns, not *from which units*, so they are
hyperparameters, and ``fit`` keeps one signature that callers never dispatch on. Low-level
array entries stay on the learners that have them, under their own names
(``GreedyTreePolicyLearner.fit_rewards(X, rewards)``, ``DistillPolicyLearner.fit_assignments(
frame, assignments)``), as econml's ``PolicyTree.fit(X, rewards)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pex_tuner.checks import Constraint, validate_params
from pex_tuner.data import ExperimentData
from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.errors import ConfigurationError, InputDataError, NotFittedError
from pex_tuner.policies.tree import TreePolicy

__all__ = ["Constraints", "PolicyLearner"]

# parameter name -> the constraints one of which its value must meet
Constraints = Mapping[str, Sequence[Constraint]]


class PolicyLearner:
    """Base of the interpretable-policy learners; see the module docstring for the contract.

    Subclasses define a keyword-only ``__init__``, ``_parameter_constraints`` and ``fit``.

    Attributes (after ``fit``):
        policy_: the learned TreePolicy over the experiment's raw features and arms.
    """

    _parameter_constraints: ClassVar[Constraints] = {}
    policy_: TreePolicy

    # ------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyperparameters, in ``__init__`` order (``deep`` is accepted for scikit-learn's
        ``clone``; no learner nests another)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> PolicyLearner:
        """Set hyperparameters by name; returns self. Checked at the next ``fit``."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ConfigurationError(
                    f"invalid parameter {name!r} for {type(self).__name__}; valid parameters "
                    f"are {valid}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _validate_params(self) -> None:
        validate_params(self.get_params(), self._parameter_constraints)

    # ------------------------------------------------------------------ fitting
    def fit(
        self, data: ExperimentData, predictions: EffectPredictions | None = None
    ) -> PolicyLearner:
        """Learn ``policy_`` from the logged experiment ``data``; returns self."""
        raise NotImplementedError

    @staticmethod
    def _check_data(data: Any) -> ExperimentData:
        if not isinstance(data, ExperimentData):
            raise InputDataError(
                f"fit expects an ExperimentData (the logged experiment), got {type(data).__name__}"
            )
        return data

    def _required_predictions(self, data: ExperimentData, predictions: Any) -> EffectPredictions:
        """``predictions`` for ``data``'s units and arms (an HTE learner cannot do without)."""
        if predictions is None:
            raise ConfigurationError(
                f"{type(self).__name__} learns from CATE predictions: call "
                "fit(data, predictions) with predictions=model.predict(data)"
            )
        return self._check_predictions(data, predictions)

    @staticmethod
    def _check_predictions(data: ExperimentData, predictions: Any) -> EffectPredictions:
        """``predictions`` checked against ``data``'s units and arms."""
        if not isinstance(predictions, EffectPredictions):
            raise InputDataError(
                f"'predictions' must be an EffectPredictions, got {type(predictions).__name__}"
            )
        if predictions.n_units != data.n_units or predictions.arms != data.arms:
            raise InputDataError(
                f"predictions cover {predictions.n_units} units and arms "
                f"{list(predictions.arms)}; the experiment has {data.n_units} units and arms "
                f"{list(data.arms)}"
            )
        return predictions

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> TreePolicy:
        if not hasattr(self, "policy_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call 'fit' first")
        return self.policy_

    def _frame(self, X: Any) -> pd.DataFrame:
        """Raw features of ``X``: an ExperimentData, a DataFrame, or a float array of shape
        (n_units, n_features) in the order of ``policy_.features``."""
        policy = self._check_fitted()
        if isinstance(X, ExperimentData):
            return X.features
        if isinstance(X, pd.DataFrame):
            return X
        arr = np.asarray(X, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != len(policy.features):
            raise InputDataError(
                f"X must have shape (n_units, {len(policy.features)}); got {arr.shape}"
            )
        return pd.DataFrame(arr, columns=list(policy.features))

    def predict(self, X: ExperimentData | pd.DataFrame | np.ndarray) -> np.ndarray:
        """Arm label per unit under ``policy_``, object ndarray of shape (n_units,).

        Args:
            X: an ExperimentData, a DataFrame of raw features, or a float array of shape
                (n_units, n_features) in the order of ``policy_.features``.
        """
        return self._check_fitted().assign(self._frame(X))
