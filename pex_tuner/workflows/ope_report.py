"""The OPE report (``pex-tuner evaluate``, phase 1a of ``pex-tuner demo``).

Split the experiment, fit a cross-fitted CATE model on the train split, and evaluate a few
example policies (assign-all baselines and linear policies that trade the outcomes off) on the
test split with one OPE estimator; with a simulated experiment, next to their true values.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.checks import Interval, Options, validate_params
from pex_tuner.data import ExperimentData
from pex_tuner.datasets import ExperimentWithTruth
from pex_tuner.effects import LEARNERS, EffectPredictions, fit_effects
from pex_tuner.ope import ESTIMATORS, evaluate
from pex_tuner.policies import LinearUtilityPolicy

__all__ = ["OPEReport", "example_policies", "format_ope_table", "ope_report"]


def example_policies(
    data: ExperimentData, predictions: EffectPredictions
) -> dict[str, LinearUtilityPolicy]:
    """Assign-all baselines plus a few linear policies that trade the outcomes off.

    Args:
        data: the experiment (its arms, outcomes and directions).
        predictions: CATE predictions whose ``tau`` (n_units, n_arms, n_outcomes) sets the
            scale of each outcome's preference.

    Returns:
        policy name -> policy: ``all:<arm>`` per arm, ``linear: <first outcome> only``,
        ``linear: equal weights`` and, with two or more outcomes, ``linear: protect <second>``.
    """
    arms, outs, dirs = data.arms, data.outcomes, data.directions
    pols = {f"all:{a}": LinearUtilityPolicy.assign_all(a, arms, outs) for a in arms}
    # preferences are scaled by each outcome's effect spread so weights are comparable
    scale = predictions.tau[:, 1:, :].std(axis=(0, 1))
    scale = np.where(scale > 0, scale, 1.0)
    first_only = np.zeros(len(outs))
    first_only[0] = 1.0
    equal = np.ones(len(outs))
    pols[f"linear: {outs[0]} only"] = LinearUtilityPolicy.from_preferences(
        first_only / scale, dirs, arms, outs
    )
    pols["linear: equal weights"] = LinearUtilityPolicy.from_preferences(
        equal / scale, dirs, arms, outs
    )
    if len(outs) > 1:
        guard = np.ones(len(outs))
        guard[1] = 3.0
        pols[f"linear: protect {outs[1]}"] = LinearUtilityPolicy.from_preferences(
            guard / scale, dirs, arms, outs
        )
    return pols


def format_ope_table(table: pd.DataFrame, truth: dict[str, np.ndarray] | None = None) -> str:
    """One row per policy: each outcome's estimate with its 95% interval (and true value),
    the paired lift over assign-all-control, and the policy's arm shares.

    Args:
        table: the long table of :func:`pex_tuner.ope.evaluate` (one row per policy and outcome).
        truth: policy name -> true values, ndarray of shape (n_outcomes,); None for real data.
    """
    outcomes = list(dict.fromkeys(table["outcome"]))
    share_cols = [c for c in table.columns if c.startswith("share[")]
    rows = []
    for policy, g in table.groupby("policy", sort=False):
        row = {"policy": policy}
        for j, o in enumerate(outcomes):
            r = g[g["outcome"] == o].iloc[0]
            cell = f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            if truth is not None:
                cell += f" (true {truth[policy][j]:.3f})"
            row[f"{o} ({r['direction']})"] = cell
            row[f"lift {o}"] = f"{r['lift']:+.3f} ± {1.96 * r['lift_se']:.3f}"
        first = g.iloc[0]
        row["arm shares"] = " ".join(f"{c[6:-1]}={first[c]:.0%}" for c in share_cols)
        rows.append(row)
    return pd.DataFrame(rows).to_string(index=False)


@dataclass(frozen=True, eq=False)
class OPEReport:
    """The example policies evaluated on the test split.

    Attributes:
        data: the whole experiment.
        split_sizes: units in ``train``, ``validation`` and ``test``.
        learner, estimator: the CATE learner and the OPE estimator used.
        fit_seconds: time to fit the CATE model.
        policies: policy name -> policy.
        table: :func:`pex_tuner.ope.evaluate`'s long table (one row per policy and outcome).
        truth: policy name -> true values on the test units, shape (n_outcomes,); or None.
    """

    data: ExperimentData
    split_sizes: dict[str, int]
    learner: str
    estimator: str
    fit_seconds: float
    policies: dict[str, LinearUtilityPolicy]
    table: pd.DataFrame
    truth: dict[str, np.ndarray] | None

    def text(self) -> str:
        """The report as ``pex-tuner evaluate`` prints it."""
        sizes = self.split_sizes
        return "\n".join(
            [
                f"{self.data!r}",
                f"split: train {sizes['train']}, validation {sizes['validation']}, "
                f"test {sizes['test']}",
                f"{self.learner.upper()}-learner fitted on train in {self.fit_seconds:.1f}s "
                f"(5-fold cross-fitting); policies evaluated on test with the "
                f"{self.estimator.upper()} estimator, 95% intervals.",
                "",
                format_ope_table(self.table, self.truth),
            ]
        )


def ope_report(
    data: ExperimentData,
    *,
    learner: str = "t",
    estimator: str = "dr",
    seed: int = 0,
    truth: ExperimentWithTruth | None = None,
) -> OPEReport:
    """Fit CATE models on the train split and evaluate the example policies on the test split.

    Args:
        data: the logged experiment.
        learner: CATE meta-learner (``"t"``, ``"x"``, ``"s"``, ``"dr"``).
        estimator: OPE estimator (``"dr"``, ``"ips"``, ``"snips"``, ``"dm"``).
        seed: seed of the split and the CATE model.
        truth: the experiment with its potential outcomes (simulated data), for true values.

    Raises:
        ConfigurationError: a bad option, before the model is fitted.
    """
    validate_params(
        {"learner": learner, "estimator": estimator, "seed": seed},
        {
            "learner": [Options(LEARNERS)],
            "estimator": [Options(ESTIMATORS)],
            "seed": [Interval(int, 0, None)],
        },
    )
    split = data.split(random_state=seed)
    train, test = split.train, split.test
    t0 = time.perf_counter()
    model = fit_effects(train, learner=learner, random_state=seed)
    fit_s = time.perf_counter() - t0
    pred = model.predict(test)
    pols = example_policies(test, pred)
    table = evaluate(test, pols, predictions=pred, estimator=estimator)
    truth_values: dict[str, Any] | None = None
    if truth is not None:
        test_truth = truth.subset(split.indices["test"])
        truth_values = {
            name: test_truth.policy_value(p.assign_index_from_effects(pred))
            for name, p in pols.items()
        }
    sizes = {
        "train": train.n_units,
        "validation": 0 if split.validation is None else split.validation.n_units,
        "test": test.n_units,
    }
    return OPEReport(data, sizes, learner, estimator, fit_s, pols, table, truth_values)
