"""Outcome-like feature columns (pex_tuner.data.leakage), checked against truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pex_tuner.data.leakage import outcome_like_columns
from pex_tuner.datasets.hillstrom import HILLSTROM_FEATURES, read_hillstrom_frame

BALANCED = ["age", "income", "member", "n_orders", "platform", "score"]


def _randomized(seed: int, n: int = 3000, shift: float = 0.0) -> pd.DataFrame:
    """A randomized 3-arm experiment: balanced pre-treatment features of several kinds, an
    outcome ``y``, and ``post``, a column shifted by ``shift`` SD in arm ``a`` (post-treatment
    when ``shift`` > 0)."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(["control", "a", "b"], size=n)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.lognormal(10, 1, n),  # heavy-tailed
            "member": rng.integers(0, 2, n),
            "n_orders": rng.poisson(2, n),
            "platform": rng.choice(["ios", "android", "web", "other"], n),
            "score": rng.uniform(0, 1, n),
            "arm": arm,
        }
    )
    frame["y"] = 0.1 * frame["age"] + (arm == "a") + rng.normal(0, 1, n)
    frame["post"] = rng.normal(0, 1, n) + shift * (arm == "a")
    return frame


def test_hillstrom_spend_is_flagged_and_the_true_features_are_not():
    frame = read_hillstrom_frame()
    features = [c for c in frame.columns if c not in ("segment", "visit", "conversion")]
    assert set(HILLSTROM_FEATURES) < set(features) and "spend" in features
    found = outcome_like_columns(frame, "segment", ["visit", "conversion"], features)
    assert [s.column for s in found] == ["spend"]
    assert found[0].kind == "imbalance" and found[0].p_value < 1e-10
    assert found[0].warning() == (
        f"column 'spend' looks like an outcome (per-arm means differ, p = {found[0].p_value:.1g})"
    )


@pytest.mark.parametrize("seed", range(20))
def test_no_balanced_feature_is_flagged(seed):
    """False positives: balanced features of a randomized experiment are never flagged (0 of
    2,100 columns over 300 seeds when measured; 20 seeds here)."""
    frame = _randomized(seed)
    assert outcome_like_columns(frame, "arm", ["y"], [*BALANCED, "post"]) == []


def test_a_post_treatment_column_is_flagged():
    """True positives: a 0.3 SD shift in one arm of 1,000 units is flagged every time (100 of
    100 seeds measured; 0.2 SD: 39 of 100)."""
    for seed in range(10):
        found = outcome_like_columns(_randomized(seed, shift=0.3), "arm", ["y"], ["age", "post"])
        assert [s.column for s in found] == ["post"], seed
    rng = np.random.default_rng(0)
    frame = _randomized(0)
    frame["status"] = np.where(rng.uniform(size=len(frame)) < 0.2 + 0.2 * (frame["arm"] == "b"),
                               "churned", "active")  # fmt: skip
    (found,) = outcome_like_columns(frame, "arm", ["y"], ["status", "age"])
    assert found.column == "status" and found.reason.startswith("per-arm shares differ")


def test_names_and_identifiers():
    frame = _randomized(1)
    frame["visits"] = frame["member"]
    frame["revenue"] = frame["score"]
    frame["history"] = frame["age"]
    frame["customer_id"] = np.arange(len(frame))
    found = outcome_like_columns(
        frame, "arm", ["visit"], ["visits", "revenue", "history", "customer_id", "age"]
    )
    assert [(s.column, s.kind, s.reason) for s in found] == [
        ("visits", "name", "its name matches the outcome 'visit'"),
        ("revenue", "name", "its name is a common outcome name"),
        ("customer_id", "identifier", "its values are unique per row"),
    ]
    assert found[-1].warning() == (
        "column 'customer_id' looks like an identifier (its values are unique per row)"
    )


def test_missing_values_and_constant_columns_are_tolerated():
    frame = _randomized(2)
    frame.loc[::7, "age"] = np.nan
    frame["const"] = 1.0
    assert outcome_like_columns(frame, "arm", ["y"], ["age", "const"]) == []
