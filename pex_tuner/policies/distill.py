"""Distill-Policy: copy a black-box policy into an interpretable TreePolicy.

A scikit-learn ``DecisionTreeClassifier`` (Gini, depth ``max_depth``, leaves of at least
``min_segment_size`` units) is fitted to the black-box policy's arms on the one-hot encoded
features, and its ``tree_`` is walked into ordered segments (:func:`pex_tuner.rules.leaf_paths`):

- a numeric column gives ``x <= t`` / ``x > t`` (scikit-learn splits at midpoints, left is
  ``<=``, the TreePolicy convention);
- a one-hot column ``platform=ios`` (threshold 0.5) gives ``platform not in {"ios"}`` on the
  left and ``platform in {"ios"}`` on the right, mapped back through the FeatureSchema;
- missing values (NaN in the encoding, a missing category NaN in all its one-hot columns) are
  routed by scikit-learn's learned ``missing_go_to_left`` of each split, which becomes the
  conditions' ``missing`` flag on features that had missing values in training.

Leaves are merged as in the greedy learner: subtrees whose leaves all give the same arm
collapse, the arm with the most training units becomes the default.

The black box (the *teacher*) is a :class:`LinearUtilityPolicy` over CATE predictions: by
default the HTE policy ``argmax_k sum_j w_j tau_kj(x)``, or any tuned policy
(:func:`pex_tuner.workflows.distill.distill_linear_policy` also reports the agreement and OPE on
held-out units).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pex_tuner.checks import Interval, TypeOf, is_int
from pex_tuner.data import ExperimentData
from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.errors import InputDataError
from pex_tuner.policies.base import Constraints, PolicyLearner
from pex_tuner.policies.linear import LinearUtilityPolicy
from pex_tuner.policies.rewards import outcome_weight_vector
from pex_tuner.policies.tree import TreePolicy
from pex_tuner.rules import Segment, conjoin, encoded_columns, leaf_paths
from pex_tuner.schema import FeatureSchema

__all__ = ["DistillPolicyLearner", "tree_policy_from_sklearn"]


def tree_policy_from_sklearn(
    tree: Any,
    schema: FeatureSchema,
    arms: tuple[str, ...],
    *,
    outcomes: tuple[str, ...] = (),
    name: str | None = None,
    with_missing: Sequence[str] = (),
) -> TreePolicy:
    """Convert a fitted ``DecisionTreeClassifier`` over ``schema.encode(frame)`` to a TreePolicy.

    Args:
        tree: the fitted classifier; its ``classes_`` are arm indices into ``arms``.
        schema: the feature schema whose encoding the tree was fitted on.
        arms: arm labels, control first.
        outcomes, name: recorded on the policy.
        with_missing: features with missing values in training; their conditions carry the
            tree's learned missing direction.
    """
    t = tree.tree_
    cols = encoded_columns(schema)
    if t.n_features != len(cols):
        raise InputDataError(
            f"the tree was fitted on {t.n_features} columns; the schema encodes {len(cols)}"
        )
    classes = np.asarray(tree.classes_, dtype=np.intp)
    left, right = t.children_left, t.children_right

    def arm_of(node: int) -> int:
        return int(classes[int(np.argmax(t.value[node][0]))])

    def collapse(node: int) -> set[int]:
        if left[node] == -1:
            return {arm_of(node)}
        arms_below = collapse(left[node]) | collapse(right[node])
        if len(arms_below) == 1:
            collapsed[node] = next(iter(arms_below))
        return arms_below

    collapsed: dict[int, int] = {}
    collapse(0)
    leaves = [
        (path, collapsed.get(node, arm_of(node)), int(t.n_node_samples[node]))
        for node, path in leaf_paths(
            t, cols, stop=collapsed.__contains__, with_missing=with_missing
        )
    ]
    size = np.zeros(len(arms))
    for _, arm, n in leaves:
        size[arm] += n
    default = int(np.argmax(size))
    segments = []
    for path, arm, _ in leaves:
        if arm == default:
            continue
        conds = conjoin(path)
        if conds:
            segments.append(Segment(conds, arms[arm]))
    return TreePolicy(
        segments=tuple(segments),
        default_arm=arms[default],
        arms=tuple(arms),
        features=schema.names,
        feature_kinds=schema.kinds,
        outcomes=tuple(outcomes),
        name=name,
    )


class DistillPolicyLearner(PolicyLearner):
    """Distill-Policy: a classification tree fitted to a black-box policy's arms.

    Parameters:
        max_depth: depth of the classification tree (>= 1).
        min_segment_size: fewest training units in a leaf (int count or fraction in (0, 0.5]).
        teacher: the black-box LinearUtilityPolicy to copy, deciding from ``fit``'s
            predictions; None: the HTE policy ``argmax_k sum_j w_j tau_kj(x)`` with
            ``outcome_weights``.
        outcome_weights: signed raw-scale w_j of the default teacher (may be omitted for one
            outcome).
        random_state: seed of scikit-learn's tie-breaking among equally good splits.

    Attributes (after ``fit``): ``policy_`` (TreePolicy), ``tree_`` (the scikit-learn
    classifier), ``train_agreement_`` (share of training units given the black-box arm).
    """

    _parameter_constraints: ClassVar[Constraints] = {
        "max_depth": [Interval(int, 1, 20, closed="both")],
        "min_segment_size": [Interval(int, 1, None), Interval(float, 0, 0.5, closed="right")],
        "teacher": [TypeOf(LinearUtilityPolicy, "a LinearUtilityPolicy"), None],
    }

    def __init__(
        self,
        *,
        max_depth: int = 3,
        min_segment_size: int | float = 0.01,
        teacher: LinearUtilityPolicy | None = None,
        outcome_weights: Sequence[float] | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.max_depth = max_depth
        self.min_segment_size = min_segment_size
        self.teacher = teacher
        self.outcome_weights = outcome_weights
        self.random_state = random_state

    def fit(
        self, data: ExperimentData, predictions: EffectPredictions | None = None
    ) -> DistillPolicyLearner:
        """Fit to the teacher's arms for ``data``'s units, decided from ``predictions``.

        Args:
            data: the logged experiment (usually its train split): raw features and schema.
            predictions: CATE predictions for ``data``'s units, required (the teacher decides
                from them).
        """
        self._validate_params()
        data = self._check_data(data)
        pred = self._required_predictions(data, predictions)
        teacher = self.teacher
        if teacher is None:
            w = outcome_weight_vector(data, self.outcome_weights)
            teacher = LinearUtilityPolicy(
                weights=tuple(w),
                biases=(0.0,) * data.n_arms,
                arms=data.arms,
                outcomes=data.outcomes,
            )
        y = teacher.assign_index_from_effects(pred)
        # data.X is data.features encoded by data.schema: no second encoding
        return self._fit_encoded(data.features, data.X, y, data.schema, data.arms, data.outcomes)

    def fit_assignments(
        self,
        frame: pd.DataFrame,
        assignments: np.ndarray,
        *,
        schema: FeatureSchema,
        arms: tuple[str, ...],
        outcomes: tuple[str, ...] = (),
    ) -> DistillPolicyLearner:
        """The array entry: fit to given black-box arm indices.

        Args:
            frame: raw features, shape (n_units, n_features).
            assignments: arm index per row of ``frame``, int ndarray of shape (n_units,).
            schema: the feature schema of ``frame``.
            arms: arm labels, control first.
            outcomes: recorded on the policy.
        """
        self._validate_params()
        y = np.asarray(assignments)
        if y.shape != (len(frame),) or not np.issubdtype(y.dtype, np.integer):
            raise InputDataError(
                f"assignments must be arm indices of shape ({len(frame)},); got dtype "
                f"{y.dtype} and shape {y.shape}"
            )
        if len(y) and (y.min() < 0 or y.max() >= len(arms)):
            raise InputDataError(f"assignments hold arm indices outside [0, {len(arms) - 1}]")
        return self._fit_encoded(frame, schema.encode(frame), y, schema, arms, outcomes)

    def _fit_encoded(
        self,
        frame: pd.DataFrame,
        X: np.ndarray,
        y: np.ndarray,
        schema: FeatureSchema,
        arms: tuple[str, ...],
        outcomes: tuple[str, ...],
    ) -> DistillPolicyLearner:
        """Fit the tree to arm indices ``y`` over ``X``, ``frame`` encoded by ``schema``."""
        from sklearn.tree import DecisionTreeClassifier

        m = self.min_segment_size
        clf = DecisionTreeClassifier(
            max_depth=self.max_depth,
            min_samples_leaf=m if is_int(m) else float(m),
            random_state=self.random_state,
        ).fit(X, y)
        self.tree_ = clf
        missing = [n for n in schema.names if frame[n].isna().any()]
        self.policy_ = tree_policy_from_sklearn(
            clf,
            schema,
            tuple(arms),
            outcomes=outcomes,
            name=f"distill_d{self.max_depth}",
            with_missing=missing,
        )
        self.train_agreement_ = float((self.policy_.assign_index(frame) == y).mean())
        return self
