"""Distill-Policy: copy a black-box policy into an interpretable TreePolicy.

A scikit-learn ``DecisionTreeClassifier`` (Gini, depth ``max_depth``, leaves of at least
``min_segment_size`` units) is fitted to the black-box policy's arms on the one-hot encoded
features, and its ``tree_`` (feature, threshold, children) is walked into ordered segments:

- a numeric column gives ``x <= t`` / ``x > t`` (scikit-learn splits at midpoints, left is
  ``<=``, the TreePolicy convention);
- a one-hot column ``platform=ios`` (threshold 0.5) gives ``platform not in {"ios"}`` on the
  left and ``platform in {"ios"}`` on the right, mapped back through the FeatureSchema.

Leaves are simplified and merged as in the greedy learner: subtrees whose leaves all give the
same arm collapse, the arm with the most training units becomes the default.

:func:`distill_linear_policy` distills any :class:`LinearUtilityPolicy` (a tuned one, say; the PEX
paper names understanding tuned policies as what experimenters want most) and reports the
agreement with it on held-out units and the OPE of both there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pex_tuner.data import ExperimentData
from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.errors import ConfigurationError, InputDataError, NotFittedError
from pex_tuner.policies.greedy_tree import _is_int, _param_error
from pex_tuner.policies.linear import LinearUtilityPolicy
from pex_tuner.policies.tree import NUMERIC, Condition, Segment, TreePolicy, conjoin
from pex_tuner.schema import FeatureSchema

if TYPE_CHECKING:  # pex_tuner.ope imports pex_tuner.policies: import it lazily
    from pex_tuner.ope import PolicyEvaluation

__all__ = [
    "DistillPolicyLearner",
    "DistillationReport",
    "distill_linear_policy",
    "tree_policy_from_sklearn",
]


def _encoded_columns(schema: FeatureSchema) -> list[tuple[str, str | None]]:
    """(feature, category or None) per encoded column, in ``schema.encoded_names`` order."""
    cmap = schema.category_map
    cols: list[tuple[str, str | None]] = []
    for name, kind in zip(schema.names, schema.kinds, strict=True):
        if kind == NUMERIC:
            cols.append((name, None))
        else:
            cols.extend((name, c) for c in cmap[name])
    return cols


def tree_policy_from_sklearn(
    tree: Any,
    schema: FeatureSchema,
    arms: tuple[str, ...],
    *,
    outcomes: tuple[str, ...] = (),
    name: str | None = None,
) -> TreePolicy:
    """Convert a fitted ``DecisionTreeClassifier`` over ``schema.encode(frame)`` to a TreePolicy.

    Args:
        tree: the fitted classifier; its ``classes_`` are arm indices into ``arms``.
        schema: the feature schema whose encoding the tree was fitted on.
        arms: arm labels, control first.
        outcomes, name: recorded on the policy.
    """
    t = tree.tree_
    cols = _encoded_columns(schema)
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
    leaves: list[tuple[list[Condition], int, int]] = []  # (path, arm, n training units)

    def walk(node: int, path: list[Condition]) -> None:
        if left[node] == -1 or node in collapsed:
            arm = collapsed.get(node, arm_of(node) if left[node] == -1 else -1)
            leaves.append((path, arm, int(t.n_node_samples[node])))
            return
        feature, category = cols[int(t.feature[node])]
        thr = float(t.threshold[node])
        if category is None:
            lc, rc = Condition(feature, "<=", thr), Condition(feature, ">", thr)
        else:  # one-hot column: <= 0.5 means "not this category"
            lc, rc = (
                Condition(feature, "not in", (category,)),
                Condition(feature, "in", (category,)),
            )
        walk(int(left[node]), [*path, lc])
        walk(int(right[node]), [*path, rc])

    walk(0, [])
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


class DistillPolicyLearner:
    """Distill-Policy: a classification tree fitted to a black-box policy's arms.

    Parameters:
        max_depth: depth of the classification tree (>= 1).
        min_segment_size: fewest training units in a leaf (int count or fraction in (0, 0.5]).
        random_state: seed of scikit-learn's tie-breaking among equally good splits.

    Attributes (after ``fit``): ``policy_`` (TreePolicy), ``tree_`` (the scikit-learn
    classifier), ``train_agreement_`` (share of training units given the black-box arm).
    """

    def __init__(
        self,
        *,
        max_depth: int = 3,
        min_segment_size: int | float = 0.01,
        random_state: int | None = 0,
    ) -> None:
        self.max_depth = max_depth
        self.min_segment_size = min_segment_size
        self.random_state = random_state

    def __repr__(self) -> str:
        return (
            f"DistillPolicyLearner(max_depth={self.max_depth}, "
            f"min_segment_size={self.min_segment_size})"
        )

    def fit(
        self,
        frame: pd.DataFrame,
        assignments: np.ndarray,
        *,
        schema: FeatureSchema,
        arms: tuple[str, ...],
        outcomes: tuple[str, ...] = (),
    ) -> DistillPolicyLearner:
        """Fit to the black-box arm indices ``assignments`` (shape (n_units,)) of ``frame``."""
        from sklearn.tree import DecisionTreeClassifier

        if not _is_int(self.max_depth) or not 1 <= self.max_depth <= 20:
            raise _param_error("max_depth", "an int in the range [1, 20]", self.max_depth)
        m = self.min_segment_size
        if not ((_is_int(m) and m >= 1) or (isinstance(m, float) and 0.0 < m <= 0.5)):
            raise _param_error(
                "min_segment_size", "an int >= 1 or a float in the range (0, 0.5]", m
            )
        y = np.asarray(assignments)
        if y.shape != (len(frame),) or not np.issubdtype(y.dtype, np.integer):
            raise InputDataError(
                f"assignments must be arm indices of shape ({len(frame)},); got dtype "
                f"{y.dtype} and shape {y.shape}"
            )
        if len(y) and (y.min() < 0 or y.max() >= len(arms)):
            raise InputDataError(f"assignments hold arm indices outside [0, {len(arms) - 1}]")
        X = schema.encode(frame)
        clf = DecisionTreeClassifier(
            max_depth=self.max_depth,
            min_samples_leaf=m if _is_int(m) else float(m),
            random_state=self.random_state,
        ).fit(X, y)
        self.tree_ = clf
        self.policy_ = tree_policy_from_sklearn(
            clf, schema, tuple(arms), outcomes=outcomes, name=f"distill_d{self.max_depth}"
        )
        self.train_agreement_ = float((self.policy_.assign_frame(frame) == y).mean())
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Arm index per row of ``frame`` under ``policy_``, shape (n_units,)."""
        if not hasattr(self, "policy_"):
            raise NotFittedError("this DistillPolicyLearner is not fitted yet; call 'fit' first")
        return self.policy_.assign_frame(frame)


@dataclass(frozen=True, eq=False)
class DistillationReport:
    """A linear-utility policy, its distilled TreePolicy, and how well they match.

    Attributes:
        tree: the distilled TreePolicy.
        source: the distilled LinearUtilityPolicy.
        agreement: share of held-out units that the tree gives the source policy's arm.
        train_agreement: the same on the units the tree was fitted on.
        evaluation: OPE of both policies on the held-out units (rows: source, tree).
        n_fit, n_holdout: units used to fit the tree and to evaluate.
    """

    tree: TreePolicy
    source: LinearUtilityPolicy
    agreement: float
    train_agreement: float
    evaluation: PolicyEvaluation
    n_fit: int
    n_holdout: int

    @property
    def value(self) -> np.ndarray:
        """OPE values, shape (2, n_outcomes): row 0 the source policy, row 1 the tree."""
        return self.evaluation.value

    def to_frame(self) -> pd.DataFrame:
        """Tidy OPE table of both policies (see PolicyEvaluation.to_frame)."""
        return self.evaluation.to_frame()

    def summary(self) -> str:
        ev = self.evaluation
        lines = [
            f"distilled '{ev.policies[0]}' into a tree with {self.tree.n_segments} segment(s), "
            f"depth {self.tree.depth}; agreement {self.agreement:.1%} on {self.n_holdout} "
            f"held-out units ({self.train_agreement:.1%} on the {self.n_fit} fitting units)",
            self.tree.describe(),
        ]
        for j, o in enumerate(ev.outcomes):
            cells = [
                f"{p}: {ev.value[i, j]:.4g} [{ev.ci_low[i, j]:.4g}, {ev.ci_high[i, j]:.4g}]"
                for i, p in enumerate(ev.policies)
            ]
            lines.append(f"{o} ({ev.estimator.upper()}): " + "; ".join(cells))
        return "\n".join(lines)


def distill_linear_policy(
    policy: LinearUtilityPolicy,
    model_or_predictions: Any,
    data: ExperimentData,
    *,
    max_depth: int = 3,
    min_segment_size: int | float = 0.01,
    holdout_size: float = 0.3,
    estimator: str = "dr",
    random_state: int | None = 0,
) -> DistillationReport:
    """Distill a LinearUtilityPolicy into a TreePolicy and compare the two on held-out units.

    Args:
        policy: the policy to explain (e.g. ``tuner.policy("trial_12")``).
        model_or_predictions: a fitted CateModel (predicts ``data``; out-of-fold when ``data``
            is its training experiment) or EffectPredictions for exactly ``data``'s units.
        data: the units to distill on; split (stratified by arm, seeded) into a fitting part
            and a held-out part of share ``holdout_size``.
        max_depth, min_segment_size: of the classification tree.
        estimator: OPE estimator on the held-out part (``"dr"`` default).
        random_state: seed of the split and of the tree.

    Returns:
        DistillationReport with the tree, the held-out agreement and the OPE of both.
    """
    from pex_tuner.ope import evaluate_assignments

    if not isinstance(policy, LinearUtilityPolicy):
        raise ConfigurationError(
            f"distill_linear_policy expects a LinearUtilityPolicy; got {type(policy).__name__}"
        )
    if not isinstance(data, ExperimentData):
        raise InputDataError(f"expected an ExperimentData, got {type(data).__name__}")
    if not 0.0 < holdout_size < 1.0:
        raise ConfigurationError(f"'holdout_size' must be in (0, 1); got {holdout_size!r}")
    if isinstance(model_or_predictions, EffectPredictions):
        pred = model_or_predictions
        if pred.n_units != data.n_units:
            raise InputDataError(
                f"predictions cover {pred.n_units} units but the experiment has {data.n_units}"
            )
    elif hasattr(model_or_predictions, "predict"):
        pred = model_or_predictions.predict(data)
    else:
        raise ConfigurationError(
            "'model_or_predictions' must be a fitted CateModel or EffectPredictions; got "
            f"{type(model_or_predictions).__name__}"
        )
    ind = data.split_indices(test_size=holdout_size, validation_size=0.0, random_state=random_state)
    fit_idx, hold_idx = ind["train"], ind["test"]
    arms_all = policy.assign_index(pred)
    learner = DistillPolicyLearner(
        max_depth=max_depth, min_segment_size=min_segment_size, random_state=random_state
    ).fit(
        data.features.iloc[fit_idx].reset_index(drop=True),
        arms_all[fit_idx],
        schema=data.schema,
        arms=data.arms,
        outcomes=data.outcomes,
    )
    holdout = data.subset(hold_idx)
    tree_arms = learner.policy_.assign_data(holdout)
    src_name = policy.name or "linear"
    tree_name = f"{src_name} (tree)"
    tree = TreePolicy(
        segments=learner.policy_.segments,
        default_arm=learner.policy_.default_arm,
        arms=learner.policy_.arms,
        features=learner.policy_.features,
        feature_kinds=learner.policy_.feature_kinds,
        outcomes=learner.policy_.outcomes,
        name=tree_name,
    )
    labels = np.asarray(data.arms, dtype=object)
    evaluation = evaluate_assignments(
        holdout,
        {src_name: labels[arms_all[hold_idx]], tree_name: labels[tree_arms]},
        predictions=pred.subset(hold_idx),
        estimator=estimator,
    )
    return DistillationReport(
        tree=tree,
        source=policy,
        agreement=float((tree_arms == arms_all[hold_idx]).mean()),
        train_agreement=learner.train_agreement_,
        evaluation=evaluation,
        n_fit=len(fit_idx),
        n_holdout=len(hold_idx),
    )
