"""Launched policies: deterministic holdout assignment, propensities, launch files, backtests."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pex_tuner.datasets import OnlineSimulator, make_synthetic
from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.launch import (
    HOLDOUT_RANGE,
    LaunchedPolicy,
    backtest,
    hash_uniforms,
    launch_document,
    launch_policy,
)
from pex_tuner.plotting import plot_backtest
from pex_tuner.policies import LinearUtilityPolicy, PolicyArtifact, write_artifact

N_UNITS = 20_000


class AngleModel:
    """A stand-in CATE model (pickled into the artifact): tau depends on x0 and x1 only.

    The goal effect of arm k >= 1 is ``r cos(angle - 2 pi (k - 1) / 3) - 0.5`` in polar
    coordinates of (x0, x1), so a goal-only policy uses all four arms.
    """

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        r, angle = np.hypot(X[:, 0], X[:, 1]), np.arctan2(X[:, 1], X[:, 0])
        tau = np.zeros((len(X), 4, 3))
        for k in range(1, 4):
            tau[:, k, 0] = r * np.cos(angle - 2 * np.pi * (k - 1) / 3) - 0.5
        return tau


@pytest.fixture(scope="module")
def exp():
    return make_synthetic(N_UNITS, random_state=3)


@pytest.fixture(scope="module")
def artifact(exp, tmp_path_factory):
    d = exp.data
    pol = LinearUtilityPolicy((1.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0), d.arms, d.outcomes, name="p")
    path = write_artifact(
        tmp_path_factory.mktemp("launch") / "policies" / "p.json",
        pol,
        schema=d.schema,
        model=AngleModel(),
    )
    return PolicyArtifact.load(path)


@pytest.fixture(scope="module")
def units(exp):
    return exp.data.to_frame()


@pytest.fixture(scope="module")
def launched(artifact):
    return launch_policy(artifact, salt="fixed-salt")


@pytest.fixture(scope="module")
def assigned(launched, units):
    return launched.assign(units)


def test_hash_uniforms_are_uniform_and_reproducible():
    u = hash_uniforms(np.arange(50_000), "s")
    assert u.shape == (50_000, 2) and ((u >= 0) & (u < 1)).all()
    np.testing.assert_array_equal(u, hash_uniforms(np.arange(50_000), "s"))
    for col in range(2):
        assert stats.kstest(u[:, col], "uniform").pvalue > 1e-3
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 4 / np.sqrt(50_000)
    # ids are hashed as str(value): 7 and "7" are the same unit
    np.testing.assert_array_equal(hash_uniforms([7], "s"), hash_uniforms(["7"], "s"))


def test_assignment_columns_and_policy_arm(launched, artifact, units, assigned):
    assert list(assigned.columns) == ["unit_id", "arm", "group", "propensity", "policy_arm"]
    assert assigned.index.equals(units.index)
    np.testing.assert_array_equal(assigned["unit_id"], units["unit_id"])
    np.testing.assert_array_equal(assigned["policy_arm"], artifact.assign(units))
    policy = assigned["group"] == "policy"
    assert (assigned.loc[policy, "arm"] == assigned.loc[policy, "policy_arm"]).all()
    assert set(assigned["group"]) == {"policy", "holdout"}
    assert set(assigned["policy_arm"]) == set(launched.arms)  # the stand-in uses every arm


def test_same_unit_same_arm_across_calls_batches_and_reload(launched, units, assigned, tmp_path):
    again = launched.assign(units)
    pd.testing.assert_frame_equal(again, assigned)
    # a unit's arm does not depend on which other units are in the batch, or their order
    part = units.sample(n=3000, random_state=5)
    sub = launched.assign(part).set_index("unit_id")
    full = assigned.set_index("unit_id").loc[sub.index]
    pd.testing.assert_frame_equal(sub, full)
    # saved and loaded: same salt, same holdout, same assignment
    path = launched.save(tmp_path / "launches" / "launch.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "pex-tuner-launch" and doc["version"] == 1
    assert doc["salt"] == "fixed-salt" and doc["holdout"] == 0.05
    assert not doc["policy"].startswith("/")  # relative to the launch file's folder
    reloaded = LaunchedPolicy.load(path)
    assert reloaded.salt == launched.salt and reloaded.created_at == launched.created_at
    pd.testing.assert_frame_equal(reloaded.assign(units), assigned)
    assert not list(path.parent.glob(".*.tmp"))  # atomic write leaves no temp file


def test_different_salt_changes_holdout_membership(artifact, units, assigned):
    other = launch_policy(artifact, salt="another-salt").assign(units)
    a = assigned["group"].eq("holdout").to_numpy()
    b = other["group"].eq("holdout").to_numpy()
    # independent draws: both holdouts hold about h * n units and overlap in about h^2 * n
    h, n = 0.05, len(units)
    assert (a != b).sum() > 1000
    assert abs((a & b).sum() - h * h * n) < 4 * np.sqrt(n * h * h)


def test_default_salt_is_random_and_stored(artifact):
    one, two = launch_policy(artifact), launch_policy(artifact)
    assert one.salt != two.salt and len(one.salt) == 32


@pytest.mark.parametrize("h", [0.02, 0.035, 0.05])
def test_holdout_share_is_binomial(artifact, units, h):
    groups = launch_policy(artifact, holdout=h, salt=f"share-{h}").assign(units)["group"]
    n = len(units)
    n_hold = int((groups == "holdout").sum())
    assert abs(n_hold - n * h) < 4 * np.sqrt(n * h * (1 - h))


def test_holdout_arms_are_uniform_and_ignore_the_policy_arm(launched, assigned):
    hold = assigned[assigned["group"] == "holdout"]
    counts = hold["arm"].value_counts().reindex(launched.arms, fill_value=0)
    assert stats.chisquare(counts.to_numpy()).pvalue > 1e-3
    table = pd.crosstab(hold["policy_arm"], hold["arm"])
    assert stats.chi2_contingency(table.to_numpy()).pvalue > 1e-3


def test_propensity_matches_empirical_frequency(launched, assigned):
    h, K = launched.holdout, launched.n_arms
    same = assigned["arm"] == assigned["policy_arm"]
    expected = np.where(same, (1 - h) + h / K, h / K)
    np.testing.assert_allclose(assigned["propensity"], expected)
    # the logged arm given the policy arm: (1 - h) 1[a == pi(x)] + h / K, for every pair
    for pa, rows in assigned.groupby("policy_arm"):
        n = len(rows)
        freq = rows["arm"].value_counts().reindex(launched.arms, fill_value=0) / n
        for arm in launched.arms:
            p = (1 - h) * (arm == pa) + h / K
            assert abs(freq[arm] - p) < 4 * np.sqrt(p * (1 - p) / n) + 1e-12, (pa, arm)
            logged = rows.loc[rows["arm"] == arm, "propensity"]
            np.testing.assert_allclose(logged, p)


@pytest.mark.parametrize(
    "holdout, shown",
    [(0.1, "0.1"), (0.01, "0.01"), (0.0, "0.0"), ("5%", "'5%'")],
)
def test_bad_holdout(artifact, holdout, shown):
    msg = f"'holdout' must be a fraction between 0.02 and 0.05 (2% to 5% of traffic); got {shown}"
    with pytest.raises(ConfigurationError, match=f"^{re.escape(msg)}$"):
        launch_policy(artifact, holdout=holdout)


def test_unit_id_errors(launched, units):
    msg = (
        "frame lacks the unit id column 'unit_id'; pass unit_id=<column> naming the column "
        "that identifies each unit"
    )
    with pytest.raises(InputDataError, match=f"^{re.escape(msg)}$"):
        launched.assign(units.drop(columns="unit_id"))
    dup = units.iloc[:10].copy()
    dup["unit_id"] = [1, 1, 2, 3, 4, 5, 6, 7, 8, 8]
    with pytest.raises(
        InputDataError,
        match=re.escape(
            "unit id column 'unit_id' has 2 duplicated value(s), e.g. [1, 8]; each unit must "
            "appear once"
        ),
    ):
        launched.assign(dup)
    missing = units.iloc[:5].assign(user=["a", None, "c", "d", "e"])
    with pytest.raises(InputDataError, match="unit id column 'user' has 1 missing value"):
        launched.assign(missing, unit_id="user")
    # another id column works and keeps its name
    out = launched.assign(units.iloc[:5].assign(user=list("abcde")), unit_id="user")
    assert list(out["user"]) == list("abcde")


def test_launch_file_errors(launched, tmp_path):
    with pytest.raises(InputDataError, match="does not exist"):
        LaunchedPolicy.load(tmp_path / "nope.json")
    (tmp_path / "junk.json").write_text('{"format": "pex-tuner-policy"}')
    with pytest.raises(InputDataError, match="is not a pex-tuner launch file"):
        LaunchedPolicy.load(tmp_path / "junk.json")
    (tmp_path / "old.json").write_text('{"format": "pex-tuner-launch", "version": 9}')
    with pytest.raises(InputDataError, match="has version 9"):
        LaunchedPolicy.load(tmp_path / "old.json")
    with pytest.raises(ConfigurationError, match="'salt' must be a non-empty string"):
        LaunchedPolicy(artifact=launched.artifact, salt="")


def test_embedded_launch_document_loads_like_a_saved_one(launched, units, assigned, tmp_path):
    """One launch format: a document embedding its artifact (as the service writes it) and
    one referencing the artifact by path (LaunchedPolicy.save) load to the same assignment."""
    import shutil

    art = launched.artifact
    shutil.copy(art.path.parent / art.document["model"]["file"], tmp_path)
    doc = launch_document(
        run_id="r",
        trial_id=3,
        holdout=launched.holdout,
        salt=launched.salt,
        arms=list(launched.arms),
        policy_artifact=art.document,
    )
    (tmp_path / "served.json").write_text(json.dumps(doc))
    served = LaunchedPolicy.load(tmp_path / "served.json")
    pd.testing.assert_frame_equal(served.assign(units), assigned)
    saved = LaunchedPolicy.load(launched.save(tmp_path / "saved" / "launch.json"))
    pd.testing.assert_frame_equal(saved.assign(units), assigned)


def test_launch_document_errors(launched, tmp_path):
    assert HOLDOUT_RANGE == (0.02, 0.05)
    with pytest.raises(ConfigurationError, match="exactly one of 'policy' and 'policy_artifact'"):
        launch_document(holdout=0.05, salt="s", arms=["a", "b"])
    with pytest.raises(ConfigurationError, match="'holdout' must be a fraction between"):
        launch_document(holdout=0.2, salt="s", arms=["a", "b"], policy="p.json")
    (tmp_path / "bare.json").write_text('{"format": "pex-tuner-launch", "version": 1}')
    with pytest.raises(InputDataError, match=r"lacks field\(s\) \['holdout', 'salt', 'policy'\]"):
        LaunchedPolicy.load(tmp_path / "bare.json")
    doc = launched.to_dict() | {"policy_artifact": {"format": "other"}}
    del doc["policy"]
    (tmp_path / "odd.json").write_text(json.dumps(doc))
    with pytest.raises(InputDataError, match="embeds a 'policy_artifact' that is not"):
        LaunchedPolicy.load(tmp_path / "odd.json")


# ---------------------------------------------------------------------------- backtest
def _true_difference(artifact) -> dict[str, float]:
    """V(policy) - V(uniform arms) per metric, from the potential outcomes of 200,000 units."""
    big = make_synthetic(200_000, random_state=99)
    pi = artifact.assign_index(big.data.features)
    rows = np.arange(big.data.n_units)
    mu = np.concatenate([big.potential_outcomes, big.long_term[:, :, None]], axis=2)
    diff = mu[rows, pi, :].mean(axis=0) - mu.mean(axis=(0, 1))
    return dict(zip([*big.data.outcomes, "long_term"], diff, strict=True))


@pytest.fixture(scope="module")
def truth(artifact):
    return _true_difference(artifact)


def test_backtest_ci_covers_the_true_difference(launched, truth):
    sim = OnlineSimulator(design_seed=0, gap=0.0, random_state=21)
    logged = sim.simulate_launch(launched, 60_000)
    assert {"arm", "group", "propensity", "long_term"} <= set(logged.columns)
    metrics = list(sim.metrics)
    table = backtest(logged, metrics)
    assert list(table["metric"]) == metrics
    assert (table["n_policy"] + table["n_holdout"] == 60_000).all()
    for row in table.itertuples():
        assert row.ci_low <= truth[row.metric] <= row.ci_high, row
        assert row.ci_low < row.difference < row.ci_high
    # the policy is built to win on the goal, and the backtest sees it
    goal = table.set_index("metric").loc["engagement"]
    assert goal["ci_low"] > 0 and goal["p_value"] < 1e-3
    np.testing.assert_allclose(table["relative_lift"], table["difference"] / table["holdout_mean"])


def test_backtest_coverage_is_nominal(artifact, truth):
    """Over repeated launches the 95% Welch interval covers the truth about 95% of the time."""
    sim = OnlineSimulator(design_seed=0, gap=0.0, random_state=8)
    reps, covered = 150, 0
    for r in range(reps):
        logged = sim.simulate_launch(launch_policy(artifact, salt=f"rep-{r}"), 2_000)
        row = backtest(logged, ["engagement"]).iloc[0]
        covered += row["ci_low"] <= truth["engagement"] <= row["ci_high"]
    assert abs(covered / reps - 0.95) < 4 * np.sqrt(0.95 * 0.05 / reps)


def test_backtest_matches_welch_by_hand(rng):
    logged = pd.DataFrame(
        {
            "group": ["policy"] * 40 + ["holdout"] * 15,
            "y": np.r_[rng.normal(1.0, 1.0, 40), rng.normal(0.5, 3.0, 15)],
            "clicked": rng.random(55) < 0.3,
        }
    )
    row = backtest(logged, ["y", "clicked"]).iloc[0]
    a, b = logged["y"][:40], logged["y"][40:]
    va, vb = a.var() / 40, b.var() / 15
    df = (va + vb) ** 2 / (va**2 / 39 + vb**2 / 14)
    half = stats.t.ppf(0.975, df) * np.sqrt(va + vb)
    diff = a.mean() - b.mean()
    assert row["difference"] == pytest.approx(diff)
    assert row["ci_low"] == pytest.approx(diff - half)
    assert row["ci_high"] == pytest.approx(diff + half)
    assert (row["n_policy"], row["n_holdout"]) == (40, 15)


@pytest.mark.parametrize(
    "change, metrics, error, match",
    [
        (lambda f: f.drop(columns="group"), ["y"], InputDataError, "lacks the group column"),
        (lambda f: f, ["z"], InputDataError, r"lacks metric column\(s\) \['z'\]"),
        (lambda f: f, [], ConfigurationError, "at least one metric"),
        (
            lambda f: f.assign(group=["policy", "holdout", "control", "policy"]),
            ["y"],
            InputDataError,
            r"has value\(s\) \['control'\]; expected only 'policy' and 'holdout'",
        ),
        (
            lambda f: f.assign(group=["policy", "holdout", "policy", "policy"]),
            ["y"],
            InputDataError,
            "has 1 'holdout' unit",
        ),
        (
            lambda f: f.assign(y=[1.0, np.nan, 2.0, 3.0]),
            ["y"],
            InputDataError,
            r"metric 'y' has 1 NaN or infinite value\(s\)",
        ),
        (
            lambda f: f.assign(y=list("abcd")),
            ["y"],
            InputDataError,
            "metric 'y' must be numeric",
        ),
    ],
)
def test_backtest_invalid_input(change, metrics, error, match):
    frame = pd.DataFrame({"group": ["policy", "holdout"] * 2, "y": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(error, match=match):
        backtest(change(frame), metrics)


def test_plot_backtest(rng):
    logged = pd.DataFrame(
        {"group": ["policy", "holdout"] * 50, "a": rng.normal(size=100), "b": rng.random(100)}
    )
    table = backtest(logged, ["a", "b"])
    fig = plot_backtest(table)
    assert len(fig.data) == 2
    assert fig.data[0].error_y.array[0] == pytest.approx(
        table["ci_high"][0] - table["difference"][0]
    )
    assert fig.data[1].y[0] == pytest.approx(table["difference"][1])
    assert len(fig.layout.shapes) == 2  # a zero line per panel
    rel = plot_backtest(table, relative=True)
    assert rel.data[0].y[0] == pytest.approx(table["relative_lift"][0])
    with pytest.raises(InputDataError, match=r"lacks column\(s\) \['ci_high'\]"):
        plot_backtest(table.drop(columns="ci_high"))


def test_backtest_colours_a_cost_reduction_green(rng):
    """Colours say good or bad in each metric's direction, not the sign of the difference."""
    from pex_tuner.plotting.styles import BAD, GOOD, NEUTRAL

    n = 400
    logged = pd.DataFrame(
        {
            "group": ["policy", "holdout"] * (n // 2),
            "cost": np.tile([1.0, 2.0], n // 2) + rng.normal(scale=0.1, size=n),
            "visit": np.tile([1.0, 2.0], n // 2) + rng.normal(scale=0.1, size=n),
            "noise": rng.normal(size=n),
        }
    )
    directions = {"cost": "min", "visit": "max", "noise": "max"}
    table = backtest(logged, ["cost", "visit", "noise"], directions=directions)
    assert list(table["direction"]) == ["min", "max", "max"]
    assert list(table["verdict"]) == ["better", "worse", "not significant"]
    # the direction column of the table, or a mapping, or "max" by default
    for fig in (
        plot_backtest(table),
        plot_backtest(table.drop(columns="direction"), directions=directions),
    ):
        assert [t.marker.color for t in fig.data] == [GOOD, BAD, NEUTRAL]
        assert fig.layout.annotations[0].text == "cost (lower is better)"
    plain = plot_backtest(table.drop(columns="direction"))
    assert plain.data[0].marker.color == BAD  # taken as maximized without a direction
    assert "p < 1e-4" in plain.data[0].hovertemplate
    with pytest.raises(ConfigurationError, match="'max' or 'min'"):
        backtest(logged, ["cost"], directions={"cost": "down"})
