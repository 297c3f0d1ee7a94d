"""``pex-tuner evaluate|tune --data 'dir/*.parquet'``: the commands on Dask."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("dask.dataframe")

from pex_tuner.cli import main
from pex_tuner.cli.scale import is_scale
from pex_tuner.datasets import write_synthetic_parquet
from pex_tuner.distributed.client import local_cluster


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    client = local_cluster(2, processes=False, dashboard_address=None, memory_limit=None)
    path = tmp_path_factory.mktemp("scale") / "data"
    info = write_synthetic_parquet(path, 3000, chunk_size=1000, n_features=4)
    yield info, path.parent / "preds"  # the commands share the stored predictions
    client.close()
    client.cluster.close()


def _args(dataset) -> list[str]:
    info, preds = dataset
    o = info.options
    args = ["--data", f"{info.path}/*.parquet", "--treatment", o["treatment"]]
    args += ["--control", o["control"], "--propensity", o["propensity"]]
    args += ["--unit-id", o["unit_id"], "--features", *o["features"]]
    for name, direction in o["outcomes"].items():
        args += ["--outcome", f"{name}:{direction}"]
    return [*args, "--sample-size", "800", "--predictions", str(preds)]


def test_evaluate_runs_on_the_cluster_and_reuses_predictions(dataset, capsys):
    assert main(["evaluate", *_args(dataset)]) == 0
    out = capsys.readouterr().out
    assert "DistributedExperiment(n_units=3000" in out and "all:control" in out
    assert "policies in one pass" in out
    assert main(["evaluate", *_args(dataset)]) == 0
    assert "reusing the stored predictions" in capsys.readouterr().out


def test_tune_evaluates_the_design_in_passes(dataset, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["tune", *_args(dataset), "--design-size", "16", "--out", str(out)]
    assert main(args) == 0
    design = pd.read_csv(out / "design.csv")
    assert (design["kind"] == "tuned").sum() == 16
    assert len(pd.read_csv(out / "frontier.csv")) >= 1
    assert "cluster passes" in capsys.readouterr().out


def test_missing_dataset_is_an_option_error(tmp_path, capsys):
    args = ["evaluate", "--data", str(tmp_path / "none" / "*.parquet"), "--treatment", "arm"]
    args += ["--control", "control", "--outcome", "y:max"]
    assert main(args) == 2
    assert "no file matches" in capsys.readouterr().err


def test_is_scale():
    import argparse

    assert is_scale(argparse.Namespace(data="x.parquet", workers=2, scheduler=None))
    assert is_scale(argparse.Namespace(data="s3://bucket/exp/", workers=None, scheduler=None))
    assert not is_scale(argparse.Namespace(data="x.csv", workers=None, scheduler=None))
