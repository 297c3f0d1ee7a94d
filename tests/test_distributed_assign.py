"""Assign and launch over Parquet, partition by partition: the in-memory assignment, row by row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.tree import DecisionTreeRegressor

pytest.importorskip("dask.distributed")

from pex_tuner.datasets import make_synthetic
from pex_tuner.distributed.assign import assign_parquet
from pex_tuner.effects import fit_effects
from pex_tuner.errors import InputDataError
from pex_tuner.launch import launch_policy
from pex_tuner.launch.parquet import launch_parquet
from pex_tuner.policies import (
    GreedyTreePolicyLearner,
    LinearUtilityPolicy,
    PolicyArtifact,
    write_artifact,
)


@pytest.fixture(scope="module")
def client():
    """A 2-worker LocalCluster (threads: quick to start; the tasks are pickled all the same
    when workers are processes, see benchmarks/bench_scale.py)."""
    from pex_tuner.distributed.client import local_cluster

    c = local_cluster(2, processes=False, dashboard_address=None, memory_limit=None)
    yield c
    c.close()
    c.cluster.close()


@pytest.fixture(scope="module")
def units(tmp_path_factory):
    """(experiment, feature frame with unit ids and 5% missing x1, its Parquet folder of 3
    files)."""
    exp = make_synthetic(3000, random_state=3)
    frame = exp.data.to_frame()[["unit_id", *exp.data.feature_names]]
    frame.loc[np.random.default_rng(0).random(len(frame)) < 0.05, "x1"] = np.nan
    folder = tmp_path_factory.mktemp("units")
    for i, part in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[part].to_parquet(folder / f"units-{i}.parquet", index=False)
    return exp, frame, folder


@pytest.fixture(scope="module")
def artifacts(units, tmp_path_factory):
    """A tree policy artifact and a linear-utility one (with its CATE model)."""
    exp, _, _ = units
    data = exp.data
    folder = tmp_path_factory.mktemp("artifacts")
    tree = GreedyTreePolicyLearner(max_depth=2, outcome_weights=[1.0, 0.2, -0.2]).fit_rewards(
        data.features, exp.true_effects, arms=data.arms, schema=data.schema
    )
    model = fit_effects(
        data.subset(np.arange(1200)),
        base_learner=DecisionTreeRegressor(max_depth=3, random_state=0),
        n_folds=2,
        random_state=0,
        progress=False,
    )
    linear = LinearUtilityPolicy(
        weights=(1.0, 0.5, -0.5),
        biases=(0.0, 0.1, -0.1, 0.0),
        arms=data.arms,
        outcomes=data.outcomes,
        name="linear",
    )
    return {
        "tree": write_artifact(folder / "tree.json", tree.policy_, schema=data.schema),
        "linear": write_artifact(folder / "linear.json", linear, schema=data.schema, model=model),
    }


def _read(folder) -> pd.DataFrame:
    files = sorted(folder.glob("part.*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


@pytest.mark.parametrize("kind", ["tree", "linear"])
def test_assign_parquet_equals_in_memory(client, units, artifacts, kind, tmp_path):
    _, frame, folder = units
    artifact = PolicyArtifact.load(artifacts[kind])
    result = assign_parquet(artifacts[kind], str(folder / "*.parquet"), tmp_path / "out")
    written = _read(tmp_path / "out")
    expected = artifact.assign(frame)
    assert result.npartitions == 3 and len(sorted((tmp_path / "out").glob("*.parquet"))) == 3
    assert list(written.columns) == [*frame.columns, "arm"]
    np.testing.assert_array_equal(written["unit_id"], frame["unit_id"])
    np.testing.assert_array_equal(written["arm"].to_numpy(object), expected)
    counts = pd.Series(expected).value_counts()
    assert result.counts == {a: int(counts.get(a, 0)) for a in artifact.policy.arms}
    assert result.n_units == len(frame)


def test_launch_parquet_equals_in_memory(client, units, artifacts, tmp_path):
    _, frame, folder = units
    launched = launch_policy(artifacts["tree"], holdout=0.05, salt="s")
    result = launch_parquet(launched, str(folder), tmp_path / "launch", keep_columns=True)
    written = _read(tmp_path / "launch")
    expected = launched.assign(frame).reset_index(drop=True)
    pd.testing.assert_frame_equal(written[expected.columns], expected, check_dtype=False)
    assert list(written.columns[: frame.shape[1] - 1]) == list(frame.columns.drop("unit_id"))
    assert sum(result.counts.values()) == len(frame)


def test_assign_parquet_names_missing_features(client, units, artifacts, tmp_path):
    _, frame, _ = units
    path = tmp_path / "few.parquet"
    frame[["unit_id", "x0"]].to_parquet(path, index=False)
    with pytest.raises(InputDataError, match="lack the policy's feature column"):
        assign_parquet(artifacts["tree"], str(path), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_assign_parquet_folder(units, artifacts, tmp_path, capsys):
    """``pex-tuner assign --data FOLDER --out FOLDER`` runs at scale (Dask's threads)."""
    from pex_tuner.cli import main

    _, frame, folder = units
    out = tmp_path / "assigned"
    assert (
        main(
            ["assign", "--policy", str(artifacts["tree"]), "--data", str(folder), "--out", str(out)]
        )
        == 0
    )
    written = _read(out)
    expected = PolicyArtifact.load(artifacts["tree"]).assign(frame)
    np.testing.assert_array_equal(written["arm"].to_numpy(object), expected)
    assert f"assigned {len(frame)} units" in capsys.readouterr().out


def test_cli_learn_policy_at_scale_names_methods(units, tmp_path, capsys):
    from pex_tuner.cli import main

    _, _, folder = units
    argv = ["learn-policy", "--method", "distill", "--data", str(folder), "--treatment", "arm"]
    argv += ["--control", "control", "--outcome", "y:max", "--out", str(tmp_path / "p.json")]
    assert main(argv) == 2
    assert "use --method greedy-tree" in capsys.readouterr().err
