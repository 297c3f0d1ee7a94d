"""DistributedExperiment: validation as from_frame, hash splits, samples, the Parquet writer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")

from pex_tuner.data import ExperimentData  # noqa: E402
from pex_tuner.datasets import make_synthetic, write_synthetic_parquet  # noqa: E402
from pex_tuner.distributed import DistributedExperiment, get_client  # noqa: E402
from pex_tuner.distributed.client import local_cluster  # noqa: E402
from pex_tuner.errors import ConfigurationError, InputDataError  # noqa: E402

OUTCOMES = {"engagement": "max", "retention": "max", "cost": "min"}
KW = {"treatment": "arm", "control": "control", "outcomes": OUTCOMES}


@pytest.fixture(scope="module")
def client():
    c = local_cluster(2, processes=False, dashboard_address=None, memory_limit=None)
    yield c
    c.close()
    c.cluster.close()


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    f = make_synthetic(3000, random_state=3).data.to_frame()
    return f.drop(columns="propensity")


def _both(frame: pd.DataFrame, npartitions: int = 3, **kw):
    """The error of from_frame and of from_dask on the same frame (None when none)."""
    errors = []
    for build in (
        lambda: ExperimentData.from_frame(frame, **kw),
        lambda: DistributedExperiment.from_dask(
            dd.from_pandas(frame, npartitions=npartitions), **kw
        ),
    ):
        try:
            build()
            errors.append(None)
        except (InputDataError, ConfigurationError) as exc:
            errors.append((type(exc), str(exc)))
    return errors


def _bad_outcomes(f):
    f = f.copy()
    f.loc[[5, 2900], "engagement"] = np.nan
    f.loc[[1500], "cost"] = np.inf
    f.loc[[7, 2000], "arm"] = None
    return f


def _bad_features(f):
    f = f.copy()
    f.loc[[3, 2500], "x0"] = np.inf
    f.loc[[1200], "x2"] = -np.inf
    return f


def _bad_propensity(f):
    f = f.assign(p=0.25)
    f.loc[[1, 2999], "p"] = 1.5
    return f


def _dup_ids(f):
    f = f.copy()
    f.loc[11, "unit_id"] = f.loc[10, "unit_id"]
    return f


INVALID = [
    ("outcomes and arms", _bad_outcomes, {}),
    ("infinite features", _bad_features, {}),
    ("propensity", _bad_propensity, {"propensity": "p"}),
    ("duplicate ids", _dup_ids, {"unit_id": "unit_id"}),
    ("missing column", lambda f: f.drop(columns="cost"), {}),
    ("unknown control", lambda f: f, {"control": "nope"}),
    ("one arm", lambda f: f.assign(arm="control"), {}),
    ("text outcome", lambda f: f.assign(cost=f["cost"].astype(str)), {}),
    ("column twice", lambda f: f, {"features": ["x0", "arm"]}),
    ("bad direction", lambda f: f, {"outcomes": {"engagement": "up"}}),
    ("empty arm", lambda f: f, {"arms": ["control", "arm_1", "arm_2", "arm_3", "arm_9"]}),
]


@pytest.mark.parametrize(("case", "corrupt", "extra"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_data_raises_the_in_memory_message(frame, case, corrupt, extra):
    kw = {**KW, **extra}
    in_memory, distributed = _both(corrupt(frame), **kw)
    assert in_memory is not None
    # Dask stores text as pyarrow strings: only the dtype's name may differ
    distributed = (distributed[0], distributed[1].replace("dtype string", "dtype str"))
    assert distributed == in_memory


def test_from_dask_rejects_pandas(frame):
    with pytest.raises(InputDataError, match="expected a dask DataFrame"):
        DistributedExperiment.from_dask(frame, **KW)


def test_schema_arms_and_local_partitions_match_in_memory(client, frame):
    f = frame.copy()
    # a category found in one partition only still enters the shared schema
    f["platform"] = f["platform"].astype(object)
    f.loc[2990, "platform"] = "tv"
    f.loc[[4, 40], "x1"] = np.nan
    local = ExperimentData.from_frame(f, unit_id="unit_id", **KW)
    dist = DistributedExperiment.from_dask(
        dd.from_pandas(f, npartitions=4), unit_id="unit_id", **KW
    )
    assert dist.schema == local.schema
    assert dist.arms == local.arms and dist.outcomes == local.outcomes
    assert dist.arm_counts == local.arm_counts
    assert dist.missing_counts == local.missing_counts
    assert dist.n_units == 3000 and dist.npartitions == 4
    parts = [p.compute() for p in dist.partitions()]
    stacked = [dist.to_local(p) for p in parts]
    np.testing.assert_array_equal(np.vstack([s.X for s in stacked]), local.X)
    np.testing.assert_array_equal(np.concatenate([s.treatment for s in stacked]), local.treatment)
    np.testing.assert_allclose(np.concatenate([s.propensity for s in stacked]), local.propensity)


@pytest.mark.parametrize("unit_id", ["unit_id", None])
def test_splits_and_folds_do_not_depend_on_partitioning(frame, unit_id):
    kw = {**KW, "unit_id": unit_id}
    a = DistributedExperiment.from_dask(dd.from_pandas(frame, npartitions=1), **kw)
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    b = DistributedExperiment.from_dask(dd.from_pandas(shuffled, npartitions=7), **kw)
    cols = ["unit_id", "_unit_hash", "_split", "_fold"]
    ra = a.ddf[cols].compute().sort_values("unit_id").reset_index(drop=True)
    rb = b.ddf[cols].compute().sort_values("unit_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(ra, rb)
    shares = ra["_split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.42, abs=0.04)
    assert shares["test"] == pytest.approx(0.40, abs=0.04)
    assert set(ra["_fold"]) == set(range(5))


def test_sample_is_stratified_and_partition_free(client, frame):
    kw = {**KW, "unit_id": "unit_id"}
    a = DistributedExperiment.from_dask(dd.from_pandas(frame, npartitions=2), **kw)
    b = DistributedExperiment.from_dask(dd.from_pandas(frame, npartitions=5), **kw)
    sa, sb = a.sample(600, random_state=1), b.sample(600, random_state=1)
    assert sa.n_units == pytest.approx(600, abs=3)
    np.testing.assert_array_equal(np.sort(sa.unit_ids), np.sort(sb.unit_ids))
    shares = np.array(list(sa.arm_counts.values())) / sa.n_units
    full = np.array(list(a.arm_counts.values())) / a.n_units
    np.testing.assert_allclose(shares, full, atol=0.01)
    other = a.sample(600, random_state=2)
    assert set(other.unit_ids) != set(sa.unit_ids)
    train = a.sample(300, random_state=1, split="train")
    split = a.ddf[["unit_id", "_split"]].compute().set_index("unit_id")["_split"]
    assert (split.loc[train.unit_ids] == "train").all()


def test_synthetic_parquet_round_trip(tmp_path, client):
    info = write_synthetic_parquet(tmp_path / "syn", 2500, chunk_size=1000, n_features=5)
    files = sorted(p.name for p in (tmp_path / "syn").glob("*.parquet"))
    assert files == ["part.00000.parquet", "part.00001.parquet", "part.00002.parquet"]
    again = write_synthetic_parquet(tmp_path / "syn", 2500, chunk_size=1000, n_features=5)
    assert again == info
    with pytest.raises(ConfigurationError, match="use another folder"):
        write_synthetic_parquet(tmp_path / "syn", 2500, chunk_size=500, n_features=5)
    exp = DistributedExperiment.from_parquet(str(tmp_path / "syn" / "*.parquet"), **info.options)
    assert exp.n_units == 2500 and exp.npartitions == 3
    assert exp.features == ("x0", "x1", "x2", "x3", "platform")
    rows = exp.ddf.compute()
    assert "true[arm_1,cost]" not in rows  # only the named columns are read
    raw = dd.read_parquet(str(tmp_path / "syn" / "*.parquet")).compute()
    truth = raw[[c for row in info.truth_columns for c in row]].to_numpy().reshape(2500, 4, 3)
    # logged outcomes are the true means of the logged arm plus unit-variance noise
    logged = truth[np.arange(2500), exp.to_local(rows).treatment, :]
    resid = rows[list(OUTCOMES)].to_numpy() - logged
    assert np.abs(resid.mean(axis=0)).max() < 0.1
    assert resid.std(axis=0) == pytest.approx([1.0, 1.0, 1.0], abs=0.1)


def test_get_client_options(client):
    assert get_client(client) is client
    assert get_client() is client
    with pytest.raises(ConfigurationError, match="not both"):
        get_client(scheduler="tcp://x:8786", workers=2)
