"""Distill-HTE: explain a CATE model with honest segments (Wu, Tan, et al., KDD 2022).

For every treatment arm vs control, one multi-task decision tree is distilled from the CATE
predictions of *all* outcomes at once, so a segment is a group of units whose effects are
alike on every outcome. The steps:

1. **Honest split.** The units are split in two halves, stratified by arm: the *structure*
   half and the *estimation* half. By default the CATE model is cross-fitted on the structure
   half only, so the estimation half's outcomes influence neither the model nor the tree.
2. **Multi-task tree.** On the structure half, a scikit-learn ``DecisionTreeRegressor`` is fitted
   to the predicted effects ``tau[:, k, :]`` of arm k, one target column per outcome. A
   multi-output regression tree minimizes the sum over outputs of the squared error, so the
   loss weights ``c_j`` of the paper are applied by standardizing each outcome's predicted
   effect (dividing by its standard deviation over the structure half, so that outcomes in
   different units compete on equal terms) and then scaling the column by ``sqrt(c_j)``: the
   tree then minimizes ``sum_j c_j * MSE_j / var_j``.
3. **Pruning.** The estimation half is dropped down the tree. A split whose children do not
   both hold at least ``min_units_per_arm`` treated *and* ``min_units_per_arm`` control units of
   the estimation half is collapsed (recursively, see
   :func:`~pex_tuner.explain.segments.pruned_segments`).
4. **Estimates.** Each remaining leaf is a segment; its effect on each outcome is the
   difference between the treated and control means of the estimation half (inverse-propensity
   weighted when propensities vary by unit), with a Welch confidence interval. A segment is
   *significant* on an outcome when its interval excludes 0.

Because the estimates come from units that shaped neither the tree nor the CATE model, the
intervals are valid for the selected segments (no winner's curse from choosing the splits).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.checks import is_int, param_error
from pex_tuner.data import ExperimentData, _feature_matrix
from pex_tuner.effects import CateModel, EffectPredictions
from pex_tuner.errors import ConfigurationError, InputDataError, NotFittedError
from pex_tuner.explain.estimates import segment_effect
from pex_tuner.explain.segments import node_owner, pruned_segments, rule_text
from pex_tuner.rules import Condition

__all__ = ["DistillHTE", "explain"]


@dataclass(frozen=True, eq=False)
class _ArmTree:
    """The pruned distillation tree of one treatment arm and its segment estimates."""

    estimator: Any  # DecisionTreeRegressor
    owner: np.ndarray  # node id -> segment index (0-based)
    conditions: tuple[tuple[Condition, ...], ...]
    effects: np.ndarray  # (n_segments, n_outcomes)


class DistillHTE:
    """Distill-HTE: honest multi-task distillation trees over CATE predictions.

    Args:
        max_depth: depth of each distillation tree (at most ``2**max_depth`` segments per arm).
        min_samples_leaf: smallest leaf of the tree grown on the structure half, an int or a
            fraction in (0, 1) as in scikit-learn. ``None`` (default): per arm,
            ``ceil(2 * min_units_per_arm / s)`` with ``s`` the smaller of the arm's and the
            control's share of units, so a leaf expects about twice the units per arm that
            pruning requires.
        min_units_per_arm: every segment keeps at least this many treated and this many control
            units of the estimation half (splits are collapsed until it does).
        outcome_weights: loss weight ``c_j >= 0`` per outcome (applied to standardized effects),
            a mapping outcome -> weight (outcomes left out weigh 1) or a sequence in outcome
            order; ``None`` weighs every outcome 1.
        confidence: coverage of the segment intervals.
        honest: learn the structure on one half and estimate on the other (default). With
            ``False`` both use every unit and the intervals are over-optimistic.
        random_state: seed of the honest split, the trees and a CATE model fitted here.

    Fitted attributes:
        segments_: DataFrame, one row per (treatment, segment): ``treatment``, ``segment`` (1,
            2, ... within the treatment, left to right in the tree), ``rule``, ``n_units``,
            ``n_treated``, ``n_control``, ``share`` (of the estimation units), then per
            outcome ``effect[o]``, ``ci_low[o]``, ``ci_high[o]``, ``significant[o]``.
            ``segments_.attrs`` holds ``directions`` (outcome -> "max"/"min") and ``control``.
        conditions_: treatment -> list of each segment's conditions (tuples of Condition).
        trees_: treatment -> the fitted (unpruned) ``DecisionTreeRegressor``.
        treatments_, arms_, outcomes_, directions_, schema_: what was explained.
        outcome_weights_: ndarray of shape (n_outcomes,).
        structure_indices_, estimation_indices_: the honest halves (indices into the data;
            equal when ``honest=False``).
        model_: the CateModel whose predictions were distilled (None when predictions were
            given).

    Example:
        >>> exp = make_synthetic(4000, random_state=0)
        >>> dh = DistillHTE(max_depth=2, random_state=0).fit(
        ...     exp.data, predictions=EffectPredictions(
        ...         tau=exp.true_effects, mu=exp.potential_outcomes,
        ...         arms=exp.data.arms, outcomes=exp.data.outcomes))
        >>> dh.segments_[["treatment", "rule", "effect[engagement]"]]  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        max_depth: int = 3,
        min_samples_leaf: int | float | None = None,
        min_units_per_arm: int = 30,
        outcome_weights: Mapping[str, float] | Sequence[float] | None = None,
        confidence: float = 0.95,
        honest: bool = True,
        random_state: int | None = None,
    ) -> None:
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.min_units_per_arm = min_units_per_arm
        self.outcome_weights = outcome_weights
        self.confidence = confidence
        self.honest = honest
        self.random_state = random_state

    def __repr__(self) -> str:
        return (
            f"DistillHTE(max_depth={self.max_depth}, min_units_per_arm="
            f"{self.min_units_per_arm}, honest={self.honest}, random_state={self.random_state!r})"
        )

    # ------------------------------------------------------------------ validation
    def _check_params(self, data: ExperimentData) -> np.ndarray:
        """Validate hyperparameters against ``data``; returns the outcome weights (J,)."""
        if not isinstance(data, ExperimentData):
            raise InputDataError(
                f"fit expects an ExperimentData, got {type(data).__name__}; build one with "
                "ExperimentData.from_frame"
            )
        if not is_int(self.max_depth) or self.max_depth < 1:
            raise param_error("max_depth", "an integer >= 1", self.max_depth)
        if not is_int(self.min_units_per_arm) or self.min_units_per_arm < 1:
            raise param_error("min_units_per_arm", "an integer >= 1", self.min_units_per_arm)
        msl = self.min_samples_leaf
        if msl is not None and not (
            (is_int(msl) and msl >= 1) or (isinstance(msl, float) and 0.0 < msl < 1.0)
        ):
            raise param_error("min_samples_leaf", "None, an integer >= 1 or a float in (0, 1)", msl)
        conf = self.confidence
        if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0 < conf < 1:
            raise param_error("confidence", "a float in (0, 1)", conf)
        if not isinstance(self.honest, bool | np.bool_):
            raise param_error("honest", "a bool", self.honest)
        return self._weights(data.outcomes)

    def _weights(self, outcomes: tuple[str, ...]) -> np.ndarray:
        ow = self.outcome_weights
        if ow is None:
            w = np.ones(len(outcomes))
        elif isinstance(ow, Mapping):
            unknown = [str(k) for k in ow if k not in outcomes]
            if unknown:
                raise ConfigurationError(
                    f"unknown outcome(s) {unknown} in outcome_weights; expected names from "
                    f"{list(outcomes)}"
                )
            w = np.array([ow.get(o, 1.0) for o in outcomes], dtype=float)
        elif isinstance(ow, str) or not isinstance(ow, Sequence | np.ndarray):
            raise param_error(
                "outcome_weights", "None, a mapping outcome -> weight or a sequence", ow
            )
        else:
            w = np.asarray(ow, dtype=float)
            if w.shape != (len(outcomes),):
                raise ConfigurationError(
                    f"outcome_weights has {w.size} value(s); expected one per outcome "
                    f"{list(outcomes)}"
                )
        if not np.isfinite(w).all() or (w < 0).any() or not (w > 0).any():
            raise ConfigurationError(
                f"outcome_weights must be finite and >= 0 with at least one > 0; got "
                f"{dict(zip(outcomes, w.tolist(), strict=True))}"
            )
        return w

    # ------------------------------------------------------------------ fitting
    def _split(self, data: ExperimentData) -> tuple[np.ndarray, np.ndarray]:
        idx = np.arange(data.n_units)
        if not self.honest:
            return idx, idx
        from sklearn.model_selection import train_test_split

        try:
            a, b = train_test_split(
                idx, test_size=0.5, random_state=self.random_state, stratify=data.treatment
            )
        except ValueError as exc:
            raise InputDataError(
                f"cannot split the experiment in halves stratified by arm ({exc}); arm counts "
                f"{data.arm_counts}"
            ) from exc
        return np.sort(a), np.sort(b)

    def _structure_tau(
        self,
        data: ExperimentData,
        struct: np.ndarray,
        predictions: EffectPredictions | None,
        model: CateModel | None,
    ) -> np.ndarray:
        """Predicted effects of the structure units, shape (n_structure, n_arms, n_outcomes)."""
        if predictions is not None and model is not None:
            raise ConfigurationError("pass either 'predictions' or 'model' to fit, not both")
        if predictions is not None:
            if not isinstance(predictions, EffectPredictions):
                raise InputDataError(
                    f"'predictions' must be an EffectPredictions, got {type(predictions).__name__}"
                )
            if predictions.n_units != data.n_units:
                raise InputDataError(
                    f"predictions cover {predictions.n_units} units; expected one per unit of "
                    f"the experiment ({data.n_units})"
                )
            if predictions.arms != data.arms or predictions.outcomes != data.outcomes:
                raise InputDataError(
                    f"predictions are for arms {list(predictions.arms)} and outcomes "
                    f"{list(predictions.outcomes)}; the experiment has arms {list(data.arms)} "
                    f"and outcomes {list(data.outcomes)}"
                )
            self.model_ = None
            return predictions.tau[struct]
        if model is None:
            model = CateModel(random_state=self.random_state, progress=False)
        elif not isinstance(model, CateModel):
            raise ConfigurationError(
                f"'model' must be a CateModel (fitted or not); got {type(model).__name__}"
            )
        self.model_ = model
        if not hasattr(model, "fold_models_"):
            # fitted on the structure half only: the estimation half stays unseen
            model.fit(data.subset(struct))
            return model.oof_predictions_.tau
        if model.arms_ != data.arms or model.outcomes_ != data.outcomes:
            raise InputDataError(
                f"the CateModel was fitted on arms {list(model.arms_)} and outcomes "
                f"{list(model.outcomes_)}; the experiment has arms {list(data.arms)} and "
                f"outcomes {list(data.outcomes)}"
            )
        return model.predict(data).tau[struct]

    def _leaf_size(self, data: ExperimentData, k: int) -> int | float:
        if self.min_samples_leaf is not None:
            return self.min_samples_leaf
        shares = np.bincount(data.treatment, minlength=data.n_arms) / data.n_units
        return max(1, math.ceil(2 * self.min_units_per_arm / min(shares[k], shares[0])))

    def fit(
        self,
        data: ExperimentData,
        predictions: EffectPredictions | None = None,
        model: CateModel | None = None,
    ) -> DistillHTE:
        """Distill segments for every treatment arm vs control; returns self.

        Args:
            data: the logged experiment.
            predictions: CATE predictions for every unit of ``data`` (shape (n_units, n_arms,
                n_outcomes)), out-of-fold ones preferably; only the structure half's are used.
                For strict honesty they should come from a model that did not see the
                estimation half.
            model: a CateModel instead of predictions. An unfitted one is fitted (cross-fitted)
                on the structure half; a fitted one predicts ``data`` (out-of-fold for its own
                training units). Neither given: a default T-learner is fitted on the structure
                half.

        Raises:
            ConfigurationError: a hyperparameter outside its allowed values.
            InputDataError: predictions or model that do not match ``data``, or an arm with
                fewer than ``min_units_per_arm`` treated or control units in the estimation
                half.
        """
        weights = self._check_params(data)
        struct, est = self._split(data)
        tau_s = self._structure_tau(data, struct, predictions, model)
        trees: dict[str, _ArmTree] = {}
        rows: list[dict[str, Any]] = []
        for k in range(1, data.n_arms):
            tree, arm_rows = self._fit_arm(data, k, tau_s[:, k, :], struct, est, weights)
            trees[data.arms[k]] = tree
            rows.extend(arm_rows)
        segments = pd.DataFrame(rows)
        segments.attrs["directions"] = dict(zip(data.outcomes, data.directions, strict=True))
        segments.attrs["control"] = data.control
        self.arms_ = data.arms
        self.treatments_ = data.arms[1:]
        self.outcomes_ = data.outcomes
        self.directions_ = data.directions
        self.schema_ = data.schema
        self.n_features_in_ = data.X.shape[1]
        self.outcome_weights_ = weights
        self.structure_indices_ = struct
        self.estimation_indices_ = est
        self._arm_trees = trees
        self.trees_ = {a: t.estimator for a, t in trees.items()}
        self.conditions_ = {a: list(t.conditions) for a, t in trees.items()}
        self.segments_ = segments
        return self

    def _fit_arm(
        self,
        data: ExperimentData,
        k: int,
        tau: np.ndarray,
        struct: np.ndarray,
        est: np.ndarray,
        weights: np.ndarray,
    ) -> tuple[_ArmTree, list[dict[str, Any]]]:
        """The pruned tree of arm k vs control and its segments' rows of ``segments_``.

        Args:
            tau: predicted effects of arm k for the structure units, shape (n_structure,
                n_outcomes).
            struct, est: the honest halves (indices into ``data``).
            weights: outcome loss weights, shape (n_outcomes,).
        """
        from sklearn.tree import DecisionTreeRegressor

        arm, m = data.arms[k], self.min_units_per_arm
        X_e, T_e = data.X[est], data.treatment[est]
        Y_e, P_e = data.Y[est], data.propensity[est]
        sd = tau.std(axis=0)
        target = (tau - tau.mean(axis=0)) / np.where(sd > 0, sd, 1.0) * np.sqrt(weights)
        tree = DecisionTreeRegressor(
            max_depth=self.max_depth,
            min_samples_leaf=self._leaf_size(data, k),
            random_state=self.random_state,
        ).fit(data.X[struct], target)
        path = tree.decision_path(X_e)
        n_t = np.asarray(path[T_e == k].sum(axis=0)).ravel()
        n_c = np.asarray(path[T_e == 0].sum(axis=0)).ravel()
        ok = (n_t >= m) & (n_c >= m)
        if not ok[0]:
            raise InputDataError(
                f"arm '{arm}' vs control '{data.control}': the estimation units hold "
                f"{int(n_t[0])} treated and {int(n_c[0])} control units; every segment "
                f"needs at least min_units_per_arm={m} of each (lower min_units_per_arm "
                "or use more units)"
            )
        with_missing = [n for n, c in data.missing_counts.items() if c]
        leaves, conds = pruned_segments(tree.tree_, ok, data.schema, with_missing)
        owner = node_owner(tree.tree_, leaves)
        seg_e = owner[tree.apply(X_e)]
        effects = np.zeros((len(leaves), data.n_outcomes))
        rows: list[dict[str, Any]] = []
        for s, leaf in enumerate(leaves):
            inside = seg_e == s
            row: dict[str, Any] = {
                "treatment": arm,
                "segment": s + 1,
                "rule": rule_text(conds[s]),
                "n_units": int(inside.sum()),
                "n_treated": int(n_t[leaf]),
                "n_control": int(n_c[leaf]),
                "share": float(inside.mean()),
            }
            effects[s] = self._segment_effect(data.outcomes, Y_e, P_e, inside, T_e, k, row)
            rows.append(row)
        return _ArmTree(estimator=tree, owner=owner, conditions=conds, effects=effects), rows

    def _segment_effect(
        self,
        outcomes: tuple[str, ...],
        Y_e: np.ndarray,
        P_e: np.ndarray,
        inside: np.ndarray,
        T_e: np.ndarray,
        k: int,
        row: dict[str, Any],
    ) -> np.ndarray:
        """Effect of arm k in one segment, shape (n_outcomes,); adds its per-outcome effect,
        interval and significance columns to ``row``.

        Args:
            Y_e, P_e, T_e: outcomes, propensities and arms of the estimation units;
            inside: bool mask over them (the segment).
        """
        tr, ct = inside & (T_e == k), inside & (T_e == 0)
        eff, lo, hi = segment_effect(
            Y_e[tr], P_e[tr], Y_e[ct], P_e[ct], confidence=float(self.confidence)
        )
        for j, o in enumerate(outcomes):
            row[f"effect[{o}]"] = float(eff[j])
            row[f"ci_low[{o}]"] = float(lo[j])
            row[f"ci_high[{o}]"] = float(hi[j])
            row[f"significant[{o}]"] = bool(lo[j] > 0 or hi[j] < 0)
        return eff

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "segments_"):
            raise NotFittedError(
                "This DistillHTE instance is not fitted yet. Call 'fit' with an ExperimentData "
                "first (or use pex_tuner.explain.explain)."
            )

    def _to_matrix(self, units: ExperimentData | pd.DataFrame | np.ndarray) -> np.ndarray:
        return _feature_matrix(units, self.schema_, fitted="the segments were")

    def predict_segment(self, units: ExperimentData | pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """Segment id (the ``segment`` column of ``segments_``) of each unit per treatment.

        Args:
            units: an ExperimentData, a DataFrame of raw features, or an encoded matrix of
                shape (n_units, n_encoded).

        Returns:
            DataFrame of shape (n_units, n_treatments), one int column per treatment arm
            (indexed like ``units`` when it is a DataFrame).
        """
        self._check_fitted()
        X = self._to_matrix(units)
        out = {arm: t.owner[t.estimator.apply(X)] + 1 for arm, t in self._arm_trees.items()}
        index = units.index if isinstance(units, pd.DataFrame) else None
        return pd.DataFrame(out, index=index)

    def predict_effects(self, units: ExperimentData | pd.DataFrame | np.ndarray) -> np.ndarray:
        """Piecewise-constant effect predictions: each unit gets its segments' estimates.

        Returns:
            ndarray of shape (n_units, n_arms, n_outcomes), control slice ``[:, 0, :]`` zero
            (comparable with ``EffectPredictions.tau``, e.g. for PEHE against true effects).
        """
        self._check_fitted()
        X = self._to_matrix(units)
        tau = np.zeros((len(X), len(self.arms_), len(self.outcomes_)))
        for k, arm in enumerate(self.treatments_, start=1):
            t = self._arm_trees[arm]
            tau[:, k, :] = t.effects[t.owner[t.estimator.apply(X)]]
        return tau


def explain(
    data: ExperimentData,
    predictions: EffectPredictions | None = None,
    *,
    model: CateModel | None = None,
    max_depth: int = 3,
    min_samples_leaf: int | float | None = None,
    min_units_per_arm: int = 30,
    outcome_weights: Mapping[str, float] | Sequence[float] | None = None,
    confidence: float = 0.95,
    honest: bool = True,
    random_state: int | None = None,
) -> DistillHTE:
    """Fit :class:`DistillHTE` on ``data`` (arguments as there); read ``.segments_``.

    Example:
        >>> segments = explain(data, max_depth=2, random_state=0).segments_  # doctest: +SKIP
    """
    return DistillHTE(
        max_depth=max_depth,
        min_samples_leaf=min_samples_leaf,
        min_units_per_arm=min_units_per_arm,
        outcome_weights=outcome_weights,
        confidence=confidence,
        honest=honest,
        random_state=random_state,
    ).fit(data, predictions=predictions, model=model)
