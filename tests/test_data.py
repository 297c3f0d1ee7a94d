"""ExperimentData: validation (an invalid-input table), encoding, splits and readers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pex_tuner import ExperimentData
from pex_tuner.errors import ConfigurationError, InputDataError, SchemaMismatchError


def frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "uid": np.arange(n),
            "age": rng.normal(40, 10, n),
            "country": rng.choice(["de", "fr", "us"], n),
            "arm": np.tile(["ctrl", "a", "b"], n // 3),
            "clicks": rng.poisson(3, n).astype(float),
            "cost": rng.normal(1, 0.1, n),
        }
    )


KW = dict(treatment="arm", control="ctrl", outcomes={"clicks": "max", "cost": "min"})


def _with(**changes):
    def make():
        f = frame()
        for _col, fn in changes.items():
            f = fn(f)
        return f

    return make


def _set(col, idx, value):
    def fn(f):
        f = f.copy()
        if f[col].dtype.kind in "iuf" and isinstance(value, str):
            f[col] = f[col].astype(object)
        f.loc[idx, col] = value
        return f

    return fn


INVALID = [
    # (case id, frame factory, extra kwargs, exception, message pattern)
    (
        "missing outcome column",
        frame,
        {"outcomes": {"revenue": "max"}},
        InputDataError,
        r"missing column\(s\) 'revenue' \(outcome\)",
    ),
    (
        "missing treatment column",
        frame,
        {"treatment": "variant"},
        InputDataError,
        r"missing column\(s\) 'variant' \(treatment\)",
    ),
    (
        "missing feature column",
        frame,
        {"features": ["age", "height"]},
        InputDataError,
        r"'height' \(feature\)",
    ),
    (
        "NaN outcome",
        _with(x=_set("clicks", [1, 4, 7], np.nan)),
        {},
        InputDataError,
        r"^outcome 'clicks' \(3 NaN\) has missing or infinite values; every unit needs its "
        r"arm, outcomes and propensity \(only features may be missing\)",
    ),
    (
        "infinite outcome",
        _with(x=_set("cost", [2], np.inf)),
        {},
        InputDataError,
        r"^outcome 'cost' \(1 infinite\) has missing or infinite values",
    ),
    (
        "NaN outcomes, arms and propensities listed at once",
        _with(
            a=_set("clicks", [1, 4, 7], np.nan),
            b=_set("cost", [2], np.inf),
            c=_set("cost", [3, 5], np.nan),
            d=_set("arm", [0], None),
            e=lambda f: f.assign(p=np.r_[np.nan, np.full(59, 0.3)]),
        ),
        {"propensity": "p"},
        InputDataError,
        r"^treatment column 'arm' has 1 missing value\(s\); outcomes 'clicks' \(3 NaN\) and "
        r"'cost' \(2 NaN, 1 infinite\) have missing or infinite values; propensity column 'p' "
        r"has 1 missing value\(s\); every unit needs its arm, outcomes and propensity \(only "
        r"features may be missing\): drop those rows or fill them before fitting$",
    ),
    (
        "infinite numeric features listed at once",
        _with(
            x=_set("age", [5], -np.inf), y=lambda f: f.assign(h=np.r_[np.inf, np.inf, np.zeros(58)])
        ),
        {},
        InputDataError,
        r"^features 'age' \(1 infinite\) and 'h' \(2 infinite\) have infinite values; missing "
        r"values \(NaN or None\) are allowed, infinite ones are not",
    ),
    (
        "arm with no units",
        frame,
        {"arms": ["ctrl", "a", "b", "c"]},
        InputDataError,
        r"arm\(s\) \['c'\] of treatment column 'arm' have no units",
    ),
    (
        "unused categorical arm",
        lambda: frame().assign(arm=lambda f: pd.Categorical(f["arm"], ["ctrl", "a", "b", "z"])),
        {},
        InputDataError,
        r"arm\(s\) \['z'\] .* have no units",
    ),
    (
        "control not present",
        frame,
        {"control": "holdout"},
        InputDataError,
        r"control arm 'holdout' does not occur in treatment column 'arm'",
    ),
    (
        "fewer than two arms",
        lambda: frame().assign(arm="ctrl"),
        {},
        InputDataError,
        r"has only one arm \('ctrl'\); an experiment needs at least two arms",
    ),
    (
        "propensity above one",
        lambda: frame().assign(p=1.2),
        {"propensity": "p"},
        InputDataError,
        r"propensity column 'p' has 60 value\(s\) outside \(0, 1\]",
    ),
    (
        "propensity zero",
        lambda: frame().assign(p=np.r_[0.0, np.full(59, 0.3)]),
        {"propensity": "p"},
        InputDataError,
        r"propensity column 'p' has 1 value\(s\) outside",
    ),
    (
        "non-numeric outcome",
        _with(x=_set("clicks", [0], "many")),
        {},
        InputDataError,
        r"outcome 'clicks' must be numeric; got dtype object, e.g. 'many'",
    ),
    (
        "duplicate unit ids",
        _with(x=_set("uid", [5, 6], 0)),
        {"unit_id": "uid"},
        InputDataError,
        r"unit id column 'uid' has 2 duplicate id\(s\), e.g. 0",
    ),
    (
        "empty frame",
        lambda: frame().iloc[:0],
        {},
        InputDataError,
        r"the experiment frame is empty \(0 rows\)",
    ),
    (
        "missing treatment values",
        _with(x=_set("arm", [0, 1], None)),
        {},
        InputDataError,
        r"treatment column 'arm' has 2 missing value\(s\)",
    ),
    (
        "bad direction",
        frame,
        {"outcomes": {"clicks": "up"}},
        ConfigurationError,
        r"outcome 'clicks' has direction 'up'; expected 'max' or 'min'",
    ),
    (
        "outcome reused as feature",
        frame,
        {"features": ["clicks", "age"]},
        InputDataError,
        r"column 'clicks' is used both as outcome and feature",
    ),
    ("not a frame", lambda: {"a": [1]}, {}, InputDataError, r"expected a pandas DataFrame"),
]


@pytest.mark.parametrize(
    "make, extra, exc, pattern", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_input_table(make, extra, exc, pattern):
    kwargs = {**KW, **extra}
    with pytest.raises(exc, match=pattern) as info:
        ExperimentData.from_frame(make(), **kwargs)
    assert isinstance(info.value, ValueError)


def test_valid_experiment_basics():
    f = frame()
    data = ExperimentData.from_frame(f, **KW, unit_id="uid")
    assert data.arms == ("ctrl", "a", "b")  # control first, then sorted
    assert data.control == "ctrl"
    assert data.outcomes == ("clicks", "cost") and data.directions == ("max", "min")
    assert data.feature_names == ("age", "country")
    assert data.schema.encoded_names == ("age", "country=de", "country=fr", "country=us")
    assert data.X.shape == (60, 4)
    np.testing.assert_array_equal(data.arm_labels, f["arm"].to_numpy())
    np.testing.assert_allclose(data.Y[:, 1], f["cost"])
    np.testing.assert_allclose(data.propensity, 1 / 3)
    assert data.propensity_source == "empirical"
    np.testing.assert_array_equal(data.signs, [1.0, -1.0])
    # immutable: arrays are read-only and attributes frozen
    with pytest.raises(ValueError):
        data.Y[0, 0] = 1.0
    with pytest.raises(AttributeError):
        data.arms = ("x",)  # type: ignore[misc]


def test_logged_propensity_is_used():
    f = frame().assign(p=0.25)
    data = ExperimentData.from_frame(f, **KW, propensity="p")
    assert data.propensity_source == "logged"
    np.testing.assert_allclose(data.propensity, 0.25)
    assert "p" not in data.feature_names


def test_new_units_are_encoded_like_training_data():
    data = ExperimentData.from_frame(frame(), **KW, unit_id="uid")
    new = pd.DataFrame({"age": [30.0, 50.0], "country": ["us", "de"], "extra": [1, 2]})
    X = data.encode(new)
    np.testing.assert_array_equal(X, [[30.0, 0, 0, 1], [50.0, 1, 0, 0]])
    with pytest.raises(SchemaMismatchError, match=r"feature 'country' has categories \['jp'\]"):
        data.encode(new.assign(country=["jp", "us"]))
    with pytest.raises(SchemaMismatchError, match=r"missing feature column\(s\) \['age'\]"):
        data.encode(new.drop(columns="age"))
    with pytest.raises(SchemaMismatchError, match=r"feature 'age' must be numeric"):
        data.encode(new.assign(age=["old", "young"]))


def test_split_is_seeded_stratified_and_disjoint():
    data = ExperimentData.from_frame(frame(600), **KW)
    s1 = data.split(random_state=3)
    s2 = data.split(random_state=3)
    for k in ("train", "validation", "test"):
        np.testing.assert_array_equal(s1.indices[k], s2.indices[k])
    all_idx = np.concatenate(list(s1.indices.values()))
    assert len(np.unique(all_idx)) == 600
    assert len(s1.indices["test"]) == 240  # 40%
    assert len(s1.indices["validation"]) == 108  # 30% of the remaining 360
    for part in s1:
        shares = np.bincount(part.treatment) / part.n_units
        np.testing.assert_allclose(shares, 1 / 3, atol=0.01)
    assert s1.train.propensity_source == "empirical"


def test_split_rejects_bad_sizes():
    data = ExperimentData.from_frame(frame(), **KW)
    with pytest.raises(ConfigurationError, match=r"'test_size' must be in \[0, 1\)"):
        data.split(test_size=1.5)


def test_csv_and_parquet_readers(tmp_path):
    f = frame()
    f.to_csv(tmp_path / "exp.csv", index=False)
    f.to_parquet(tmp_path / "exp.parquet")
    a = ExperimentData.from_csv(tmp_path / "exp.csv", **KW)
    b = ExperimentData.from_parquet(tmp_path / "exp.parquet", **KW)
    c = ExperimentData.from_file(tmp_path / "exp.parquet", **KW)
    np.testing.assert_allclose(a.X, b.X)
    np.testing.assert_allclose(a.Y, c.Y)
    with pytest.raises(InputDataError, match="does not exist"):
        ExperimentData.from_csv(tmp_path / "nope.csv", **KW)


def test_to_frame_round_trip():
    data = ExperimentData.from_frame(frame(), **KW, unit_id="uid")
    again = ExperimentData.from_frame(
        data.to_frame(), **KW, unit_id="unit_id", propensity="propensity"
    )
    np.testing.assert_allclose(again.X, data.X)
    np.testing.assert_array_equal(again.treatment, data.treatment)
