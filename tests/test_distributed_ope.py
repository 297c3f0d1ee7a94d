"""Distributed predictions and OPE: the in-memory numbers, on a 2-worker LocalCluster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")

from pex_tuner import ope  # noqa: E402
from pex_tuner.datasets import make_synthetic  # noqa: E402
from pex_tuner.distributed import (  # noqa: E402
    DistributedCateModel,
    DistributedExperiment,
    DistributedOPEMetric,
    DistributedPredictions,
    map_partitions_reduce,
)
from pex_tuner.distributed import ope as dope  # noqa: E402
from pex_tuner.distributed.client import local_cluster  # noqa: E402
from pex_tuner.errors import ConfigurationError, InputDataError  # noqa: E402
from pex_tuner.ope import ESTIMATORS  # noqa: E402
from pex_tuner.policies import LinearUtilityPolicy, TreePolicy  # noqa: E402
from pex_tuner.rules import Condition, Segment  # noqa: E402

OUTCOMES = {"engagement": "max", "retention": "max", "cost": "min"}


@pytest.fixture(scope="module")
def client():
    c = local_cluster(2, processes=False, dashboard_address=None, memory_limit=None)
    yield c
    c.close()
    c.cluster.close()


@pytest.fixture(scope="module", params=["logged", "empirical"])
def setup(request, client, tmp_path_factory):
    """(experiment, stored predictions, in-memory validation units and predictions)."""
    frame = make_synthetic(3000, random_state=5).data.to_frame()
    kw = {"treatment": "arm", "control": "control", "outcomes": OUTCOMES, "unit_id": "unit_id"}
    if request.param == "logged":
        kw["propensity"] = "propensity"
    else:
        frame = frame.drop(columns="propensity")
    exp = DistributedExperiment.from_dask(dd.from_pandas(frame, npartitions=5), n_folds=2, **kw)
    model = DistributedCateModel(sample_size=1000, random_state=0).fit(exp)
    path = tmp_path_factory.mktemp("preds") / request.param
    preds = DistributedPredictions.compute(exp, model, path)
    rows = exp.ddf.compute()
    stored = preds.ddf.compute()
    mask = (rows["_split"] == "validation").to_numpy()
    return exp, preds, exp.to_local(rows.loc[mask]), preds.to_local(stored.loc[mask])


def _policies(K: int, P: int = 24) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    W = rng.normal(size=(P, 3))
    B = np.c_[np.zeros(P), rng.normal(scale=0.2, size=(P, K - 1))]
    return W, B


def _assert_same(a, b):
    assert a.policies == b.policies and a.n_units == b.n_units
    for name in ("value", "se", "lift", "shares"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=0, atol=1e-10)
    # assign-all-control's lift has a zero standard error, computed as the square root of a
    # sum that cancels to rounding error (~1e-18): compare variances there
    zero = b.lift_se < 1e-6
    np.testing.assert_allclose(a.lift_se[~zero], b.lift_se[~zero], rtol=0, atol=1e-10)
    np.testing.assert_allclose(a.lift_se[zero] ** 2, b.lift_se[zero] ** 2, rtol=0, atol=1e-15)


def test_predictions_are_stored_once_and_out_of_fold(setup):
    exp, preds, _, _ = setup
    assert preds.npartitions == exp.npartitions and preds.n_units == exp.n_units
    assert preds.out_of_fold
    again = DistributedPredictions.open(preds.path)
    first = again.partition(0)
    assert first.tau.shape[1:] == (4, 3)
    np.testing.assert_array_equal(first.tau[:, 0, :], 0.0)
    np.testing.assert_allclose(first.mu[:, 2] - first.mu[:, 0], first.tau[:, 2])


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_linear_policies_equal_the_in_memory_path(setup, estimator):
    exp, preds, local, local_preds = setup
    W, B = _policies(exp.n_arms)
    got = dope.evaluate_linear_policies(exp, preds, W, B, estimator=estimator)
    want = ope.evaluate_linear_policies(local, local_preds, W, B, estimator=estimator)
    _assert_same(got, want)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_assignments_equal_the_in_memory_path(setup, estimator):
    exp, preds, local, local_preds = setup
    tree = TreePolicy(
        segments=(
            Segment((Condition("x0", "<=", 0.2), Condition("platform", "in", ["ios"])), "arm_1"),
            Segment((Condition("x1", ">", -0.3),), "arm_3"),
        ),
        default_arm="control",
        arms=exp.arms,
        features=("x0", "x1", "platform"),
        feature_kinds=("numeric", "numeric", "categorical"),
        name="tree",
    )
    W, B = _policies(exp.n_arms, 2)
    lin = LinearUtilityPolicy(
        weights=tuple(W[0]), biases=tuple(B[0]), arms=exp.arms, outcomes=exp.outcomes
    )
    got = dope.evaluate_assignments(
        exp, {"tree": tree, "linear": lin}, predictions=preds, estimator=estimator
    )
    labels = np.asarray(local.arms, dtype=object)
    want = ope.evaluate_assignments(
        local,
        {"tree": labels[tree.assign_data(local)], "linear": lin},
        predictions=local_preds,
        estimator=estimator,
    )
    _assert_same(got, want)
    frame = dope.evaluate(exp, {"tree": tree}, predictions=preds, estimator=estimator)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 3


def test_metric_has_the_tuner_interface(setup):
    exp, preds, local, local_preds = setup
    metric = DistributedOPEMetric(exp, preds, split="validation", sample_size=300)
    baselines = {
        f"all:{a}": LinearUtilityPolicy.assign_all(a, exp.arms, exp.outcomes) for a in exp.arms
    }
    ev = metric.evaluate(baselines)
    want = ope.evaluate_linear_policies(
        local, local_preds, list(baselines.values()), names=list(baselines)
    )
    _assert_same(ev, want)
    W, B = _policies(exp.n_arms)
    _assert_same(
        metric.evaluate_matrix(W, B), ope.evaluate_linear_policies(local, local_preds, W, B)
    )
    assert metric.metric_names == {o: o for o in OUTCOMES}
    raw = metric.raw_data(ev, 0)
    assert raw["cost"] == (float(ev.value[0, 2]), float(ev.se[0, 2]))
    assert 200 < metric.predictions.n_units < 400
    assert metric.data.n_units == metric.predictions.n_units
    assert metric.passes == 4  # shift pass, two batches, the sample


def test_reduce_checks_alignment(setup, tmp_path):
    exp, preds, _, _ = setup
    n = map_partitions_reduce(lambda d, p: np.array([d.n_units, p.n_units]), exp, preds)
    assert list(n) == [exp.n_units, exp.n_units]
    other = DistributedExperiment.from_dask(
        exp.ddf.drop(columns=["_unit_hash", "_split", "_fold"]).repartition(npartitions=3),
        treatment="arm",
        control="control",
        outcomes=OUTCOMES,
        unit_id="unit_id",
    )
    with pytest.raises(InputDataError, match="partitions"):
        map_partitions_reduce(lambda d, p: np.zeros(1), other, preds)


def test_several_splits_at_once(setup):
    exp, preds, _, _ = setup
    W, B = _policies(exp.n_arms, 3)
    both = dope.evaluate_linear_policies(exp, preds, W, B, split=("train", "validation"))
    train = dope.evaluate_linear_policies(exp, preds, W, B, split="train")
    val = dope.evaluate_linear_policies(exp, preds, W, B, split="validation")
    assert both.n_units == train.n_units + val.n_units
    with pytest.raises(ConfigurationError, match="'split' must be one of"):
        dope.evaluate_linear_policies(exp, preds, W, B, split=("train", "holdout"))
