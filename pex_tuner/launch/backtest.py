"""Backtest of a launch: the policy group vs the randomized holdout, per metric.

Launch traffic (see :mod:`pex_tuner.launch.holdout`) splits units at random, by hash, into a
policy group (share 1 - h, every unit gets the policy's arm) and a holdout (share h, every unit
gets a uniformly random arm). Both groups are random samples of the same population, so

* the policy-group mean estimates ``V(pi)``, the value of the policy, and
* the holdout mean estimates ``V(uniform)``, the value of assigning arms uniformly at random,

and their difference ``V(pi) - V(uniform)`` gets a Welch two-sample t interval (unequal
variances). The relative lift is ``difference / holdout mean`` with a delta-method interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.launch.holdout import HOLDOUT_GROUP, POLICY_GROUP

__all__ = ["backtest"]

BACKTEST_COLUMNS = (
    "metric",
    "n_policy",
    "n_holdout",
    "policy_mean",
    "holdout_mean",
    "difference",
    "se",
    "ci_low",
    "ci_high",
    "p_value",
    "relative_lift",
    "relative_ci_low",
    "relative_ci_high",
)


def _validate(logged: pd.DataFrame, metrics: list[str], group_col: str) -> pd.Series:
    if not isinstance(logged, pd.DataFrame):
        raise InputDataError(f"expected a DataFrame of logged traffic; got {type(logged).__name__}")
    if not metrics:
        raise ConfigurationError("'metrics' must name at least one metric column")
    if group_col not in logged.columns:
        raise InputDataError(
            f"logged traffic lacks the group column '{group_col}'; expected the 'group' column "
            "written by LaunchedPolicy.assign (values 'policy' and 'holdout')"
        )
    missing = [m for m in metrics if m not in logged.columns]
    if missing:
        raise InputDataError(f"logged traffic lacks metric column(s) {missing}")
    groups = logged[group_col].astype(str)
    unknown = sorted(set(groups.unique()) - {POLICY_GROUP, HOLDOUT_GROUP})
    if unknown:
        raise InputDataError(
            f"group column '{group_col}' has value(s) {unknown}; expected only "
            f"'{POLICY_GROUP}' and '{HOLDOUT_GROUP}'"
        )
    for g in (POLICY_GROUP, HOLDOUT_GROUP):
        n_g = int((groups == g).sum())
        if n_g < 2:
            raise InputDataError(
                f"group column '{group_col}' has {n_g} '{g}' unit(s); a backtest needs at least "
                "2 in each group"
            )
    for m in metrics:
        col = logged[m]
        if not pd.api.types.is_numeric_dtype(col.dtype):  # booleans count as numeric
            raise InputDataError(f"metric '{m}' must be numeric; got dtype {col.dtype}")
        n_bad = int((~np.isfinite(col.to_numpy(dtype=np.float64, na_value=np.nan))).sum())
        if n_bad:
            raise InputDataError(
                f"metric '{m}' has {n_bad} NaN or infinite value(s); drop or impute them before "
                "the backtest"
            )
    return groups


def backtest(
    logged: pd.DataFrame,
    metrics: Sequence[str],
    *,
    group_col: str = "group",
    level: float = 0.95,
    directions: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Compare the policy group with the holdout on each metric of logged launch traffic.

    Args:
        logged: launch traffic, DataFrame of shape (n_units, ...) with ``group_col`` (values
            ``"policy"`` / ``"holdout"``, as from ``LaunchedPolicy.assign``) and the metric
            columns (numeric or boolean, no missing values).
        metrics: metric columns to compare.
        group_col: name of the group column.
        level: confidence level of the intervals.
        directions: metric -> ``"max"`` / ``"min"`` (metrics not named: ``"max"``). When
            given, the table gets a ``direction`` column after ``metric`` and a ``verdict``
            column: ``"better"`` / ``"worse"`` when the interval lies wholly on the better /
            worse side of zero for the metric's direction (a significant cost reduction is
            better), ``"not significant"`` otherwise.

    Returns:
        DataFrame with one row per metric and columns ``metric``, ``n_policy``, ``n_holdout``,
        ``policy_mean``, ``holdout_mean``, ``difference`` (policy minus holdout), ``se``,
        ``ci_low`` / ``ci_high`` (Welch t interval), ``p_value`` (Welch t test of no
        difference), ``relative_lift`` (difference / holdout mean) and ``relative_ci_low`` /
        ``relative_ci_high`` (delta method; NaN when the holdout mean is 0); with
        ``directions``, also ``direction`` and ``verdict``.
    """
    if not 0.0 < level < 1.0:
        raise ConfigurationError(f"'level' must lie strictly between 0 and 1; got {level}")
    metrics = [str(m) for m in ([metrics] if isinstance(metrics, str) else metrics)]
    dirs = _check_directions(directions, metrics)
    groups = _validate(logged, metrics, group_col)
    is_policy = (groups == POLICY_GROUP).to_numpy()
    z = stats.norm.ppf(0.5 + level / 2.0)
    rows = []
    for m in metrics:
        y = logged[m].to_numpy(dtype=np.float64)
        yp, yh = y[is_policy], y[~is_policy]
        mp, mh = float(yp.mean()), float(yh.mean())
        vp, vh = yp.var(ddof=1) / len(yp), yh.var(ddof=1) / len(yh)
        se = float(np.sqrt(vp + vh))
        if se > 0:
            res = stats.ttest_ind(yp, yh, equal_var=False)
            ci = res.confidence_interval(level)
            lo, hi, p = float(ci.low), float(ci.high), float(res.pvalue)
        else:  # both groups constant: the difference is known exactly
            lo = hi = mp - mh
            p = 1.0 if mp == mh else 0.0
        if mh != 0:
            rel = (mp - mh) / mh
            rel_se = float(np.sqrt(vp / mh**2 + mp**2 * vh / mh**4))
            rel_lo, rel_hi = rel - z * rel_se, rel + z * rel_se
        else:
            rel = rel_lo = rel_hi = float("nan")
        rows.append((m, len(yp), len(yh), mp, mh, mp - mh, se, lo, hi, p, rel, rel_lo, rel_hi))
    table = pd.DataFrame(rows, columns=list(BACKTEST_COLUMNS))
    if dirs is not None:
        table.insert(1, "direction", [dirs[m] for m in metrics])
        table["verdict"] = [
            _verdict(lo, hi, d)
            for lo, hi, d in zip(table["ci_low"], table["ci_high"], table["direction"], strict=True)
        ]
    return table


def _check_directions(
    directions: Mapping[str, str] | None, metrics: list[str]
) -> dict[str, str] | None:
    if directions is None:
        return None
    bad = {m: d for m, d in directions.items() if d not in ("max", "min")}
    if bad:
        raise ConfigurationError(f"'directions' values must be 'max' or 'min'; got {bad}")
    return {m: str(directions.get(m, "max")) for m in metrics}


def _verdict(low: float, high: float, direction: str) -> str:
    """Better / worse / not significant: where [low, high] lies for the metric's direction."""
    if low > 0:
        return "better" if direction == "max" else "worse"
    if high < 0:
        return "worse" if direction == "max" else "better"
    return "not significant"
