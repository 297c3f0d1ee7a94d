"""The honest frontier report: every frontier policy's selection estimate beside an estimate on
the untouched test split.

A frontier picked from many noisy estimates is biased upward (the winner's curse): the policies
that look best are, on average, the ones whose noise was favourable. The test split played no
part in fitting the CATE model (the test units' predictions come from the fold models fitted on
the train split), in the policy ranges, or in the selection, so the test estimate of a selected
policy is unbiased for its value; the gap between the two columns is what selection added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from scipy.stats import norm

__all__ = ["frontier_report"]


def frontier_report(
    front: pd.DataFrame,
    policies: Mapping[str, Any],
    test_metric: Any,
    outcomes: Sequence[str],
    *,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Selection and test-split estimates with intervals for the rows of ``front``.

    Args:
        front: frontier rows (policy, kind, ``<o>`` and ``<o>_se`` per outcome, shares).
        policies: policy name -> policy object, for every row of ``front``.
        test_metric: an ``OPEMetric`` on the test split (its ``evaluate`` takes the policies).
        outcomes: the outcome names.
        confidence: interval level (0.95: 95% intervals).

    Returns:
        One row per frontier policy: policy, kind, per outcome the selection estimate ``<o>``
        with ``<o>_low`` / ``<o>_high`` (normal interval from ``<o>_se``), the test estimate
        ``<o>[test]`` with ``<o>[test]_low`` / ``<o>[test]_high``, then the shares.
    """
    z = float(norm.ppf(0.5 + confidence / 2))
    names = list(front["policy"])
    test = test_metric.evaluate([policies[n] for n in names], names=names)
    out = pd.DataFrame({"policy": names, "kind": list(front["kind"])})
    for j, o in enumerate(outcomes):
        value = front[o].to_numpy(dtype=float)
        se = front[f"{o}_se"].to_numpy(dtype=float)
        out[o] = value
        out[f"{o}_low"] = value - z * se
        out[f"{o}_high"] = value + z * se
        out[f"{o}[test]"] = test.value[:, j]
        out[f"{o}[test]_low"] = test.value[:, j] - z * test.se[:, j]
        out[f"{o}[test]_high"] = test.value[:, j] + z * test.se[:, j]
    for c in front.columns:
        if c.startswith("share["):
            out[c] = front[c].to_numpy()
    return out
