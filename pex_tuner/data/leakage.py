"""Feature columns that look like outcomes (post-treatment) or unit identifiers.

When the features are not named, every column not used otherwise becomes one, and a logged
experiment often holds more outcomes than the ones declared (Hillstrom's ``spend`` next to
``visit``). A model that sees an outcome as a feature finds "segments" on it, and a policy that
tests it cannot be deployed: the column does not exist before the treatment.

:func:`outcome_like_columns` flags such columns by two rules:

1. **Balance.** In a randomized experiment a pre-treatment feature has the same distribution in
   every arm, so its per-arm means differ only by chance. For each numeric column the rule runs
   a one-way ANOVA (means) and a Kruskal-Wallis test (ranks; robust to the zero-inflated,
   heavy-tailed outcomes such as spend) across arms; for each categorical column with at most
   ``max_levels`` levels, a chi-square test of independence of level and arm. A column is
   flagged when its smallest p-value, Bonferroni-adjusted for the two tests and the number of
   columns tested, is below ``alpha`` (1e-6 by default): "far beyond chance". Under balance a
   column is flagged with probability below ``alpha`` / (number of columns), so a clean
   experiment with any number of features raises a false alarm with probability below 1e-6.
   An experiment that was not randomized (or was stratified on a feature) can fail this rule
   on a genuine feature: the result is a warning, never an error.
2. **Names.** A column whose name contains a declared outcome's name as a word or prefix
   (``visits``, ``visit_7d`` for the outcome ``visit``), or equals a common outcome name
   (``revenue``, ``spend``, ``conversion``, ``churn`` ...).

Integer or string columns whose values are unique per row are flagged as identifiers.

Measured (tests/test_leakage.py): on Hillstrom with outcomes ``visit`` and ``conversion`` and
features=None, ``spend`` is flagged (Kruskal-Wallis p = 1e-12) and none of the eight
pre-treatment features is (smallest p = 0.36); on 20 seeds of a synthetic randomized
experiment with ten balanced features no column is flagged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["KNOWN_OUTCOME_NAMES", "SuspectColumn", "outcome_like_columns"]

KNOWN_OUTCOME_NAMES = frozenset(
    {
        "outcome",
        "response",
        "reward",
        "target",
        "label",
        "conversion",
        "converted",
        "revenue",
        "spend",
        "purchase",
        "purchased",
        "churn",
        "churned",
        "retention",
        "retained",
        "click",
        "clicked",
        "visit",
        "visited",
    }
)


@dataclass(frozen=True)
class SuspectColumn:
    """A feature column that looks like an outcome or an identifier.

    Attributes:
        column: the column name.
        kind: ``"imbalance"`` (per-arm distributions differ far beyond chance), ``"name"``
            (named like an outcome) or ``"identifier"`` (unique per row).
        reason: why, in words (``per-arm means differ, p = 1e-12``).
        p_value: the smallest unadjusted p-value of the balance tests (None for names and
            identifiers).
    """

    column: str
    kind: str
    reason: str
    p_value: float | None = None

    def warning(self) -> str:
        """The one-line warning the command line prints."""
        what = "an identifier" if self.kind == "identifier" else "an outcome"
        return f"column '{self.column}' looks like {what} ({self.reason})"


def _normalize(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def _name_reason(column: str, outcomes: Sequence[str]) -> str | None:
    norm = _normalize(column)
    tokens = set(norm.split("_"))
    for outcome in outcomes:
        o = _normalize(outcome)
        if o and (o in tokens or norm.startswith(o)):
            return f"its name matches the outcome '{outcome}'"
    singular = norm[:-1] if norm.endswith("s") else norm
    if norm in KNOWN_OUTCOME_NAMES or singular in KNOWN_OUTCOME_NAMES:
        return "its name is a common outcome name"
    return None


def _balance_test(values: pd.Series, arms: pd.Series, max_levels: int) -> tuple[float, str] | None:
    """(smallest p-value of the balance tests of one column across arms, what differs);
    None when the column is not tested."""
    from scipy import stats

    keep = values.notna().to_numpy()
    values, arms = values[keep], arms[keep]
    if values.nunique() < 2 or arms.nunique() < 2:
        return None
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        x = values.to_numpy(dtype=float)
        groups = [x[(arms == a).to_numpy()] for a in arms.unique()]
        if min(len(g) for g in groups) < 2:
            return None
        p_mean = float(stats.f_oneway(*groups).pvalue)
        p_rank = float(stats.kruskal(*groups).pvalue)
        ps = [p for p in (p_mean, p_rank) if np.isfinite(p)]
        return (min(ps), "per-arm means differ") if ps else None
    if values.nunique() > max_levels:
        return None
    table = pd.crosstab(values.astype(str), arms)
    return float(stats.chi2_contingency(table.to_numpy()).pvalue), "per-arm shares differ"


def _is_identifier(values: pd.Series) -> bool:
    integer_or_text = pd.api.types.is_integer_dtype(values) or not (
        pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
    )
    return integer_or_text and len(values) > 20 and values.is_unique and values.notna().all()


def outcome_like_columns(
    frame: pd.DataFrame,
    treatment: str,
    outcomes: Iterable[str],
    features: Sequence[str],
    *,
    alpha: float = 1e-6,
    max_levels: int = 100,
) -> list[SuspectColumn]:
    """Feature columns that look like outcomes or identifiers (see the module docstring).

    Args:
        frame: the logged experiment, one row per unit.
        treatment: the column with each unit's arm.
        outcomes: the declared outcome names (for the name rule).
        features: the candidate feature columns to check.
        alpha: family-wise level of the balance rule (Bonferroni over the columns tested and
            the two tests per numeric column).
        max_levels: categorical columns with more levels are not balance-tested.

    Returns:
        One SuspectColumn per flagged column, in ``features`` order; a column flagged by
        several rules is reported once (imbalance first, then name, then identifier).
    """
    outcomes = [str(o) for o in outcomes]
    arms = frame[treatment]
    tests = {c: _balance_test(frame[c], arms, max_levels) for c in features}
    n_tests = 2 * max(1, sum(t is not None for t in tests.values()))
    found: list[SuspectColumn] = []
    for c in features:
        test = tests[c]
        name_reason = _name_reason(c, outcomes)
        if test is not None and test[0] * n_tests < alpha:
            p, what = test
            found.append(SuspectColumn(c, "imbalance", f"{what}, p = {p:.1g}", p))
        elif name_reason is not None:
            found.append(SuspectColumn(c, "name", name_reason))
        elif _is_identifier(frame[c]):
            found.append(SuspectColumn(c, "identifier", "its values are unique per row"))
    return found
