"""Interpretable policies at scale: the Dask tree search and Distill-HTE equal the in-memory ones.

A 2-worker LocalCluster over a small partitioned experiment (categorical feature, missing
values); the in-memory learners see the same units in the same order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.tree import DecisionTreeRegressor

pytest.importorskip("dask.distributed")

from pex_tuner.datasets import make_synthetic
from pex_tuner.distributed.greedy_tree import DaskGreedyTreeLearner
from pex_tuner.distributed.trees import (
    PassRequest,
    PassResult,
    grow_levels,
    partition_statistics,
)
from pex_tuner.effects import fit_effects
from pex_tuner.errors import ConfigurationError
from pex_tuner.policies import GreedyTreePolicyLearner, policy_rewards
from pex_tuner.policies.rewards import SummedRewards
from pex_tuner.policies.tree_bins import bin_codes, bin_layout, feature_columns
from pex_tuner.policies.tree_search import SplitRule, finish_tree

WEIGHTS = [1.0, 0.3, -0.2]


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
def frame() -> pd.DataFrame:
    """4,000 units, 4 arms, 3 outcomes, a categorical feature and 5% missing x1."""
    exp = make_synthetic(4000, random_state=7)
    out = exp.data.to_frame()
    rng = np.random.default_rng(0)
    out.loc[rng.random(len(out)) < 0.05, "x1"] = np.nan
    return out


@pytest.fixture(scope="module")
def scaled(client, frame, tmp_path_factory):
    """(DistributedExperiment, DistributedPredictions, the CATE model) over 4 partitions."""
    import dask.dataframe as dd

    from pex_tuner.data import ExperimentData
    from pex_tuner.distributed import DistributedExperiment, DistributedPredictions

    spec = {"treatment": "arm", "control": "control", "propensity": "propensity"}
    outcomes = {"engagement": "max", "retention": "max", "cost": "min"}
    features = [c for c in frame.columns if c[0] == "x" or c == "platform"]
    data = ExperimentData.from_frame(frame, outcomes=outcomes, features=features, **spec)
    model = fit_effects(  # a quick model: the trees only need predictions
        data.subset(np.arange(1500)),
        base_learner=DecisionTreeRegressor(max_depth=4, random_state=0),
        n_folds=2,
        random_state=0,
        progress=False,
    )
    exp = DistributedExperiment.from_dask(
        dd.from_pandas(frame, npartitions=4),
        outcomes=outcomes,
        features=features,
        unit_id="unit_id",
        **spec,
    )
    path = tmp_path_factory.mktemp("preds") / "predictions"
    return exp, DistributedPredictions.compute(exp, model, path), model


def _in_memory(exp, preds, split="train"):
    """The units of ``split`` gathered in partition order, and their predictions."""
    pdf = exp.ddf.compute()
    mask = (pdf["_split"] == split).to_numpy() if split else np.ones(len(pdf), bool)
    pred = preds.to_local(preds.ddf.compute().loc[mask])
    return exp.to_local(pdf.loc[mask].reset_index(drop=True)), pred


def test_pure_level_growth_equals_in_memory(frame):
    """grow_levels over 3 in-memory chunks grows the in-memory tree (no cluster)."""
    from pex_tuner.data import ExperimentData

    outcomes = {"engagement": "max", "retention": "max", "cost": "min"}
    features = [c for c in frame.columns if c[0] == "x" or c == "platform"]
    data = ExperimentData.from_frame(
        frame, treatment="arm", control="control", outcomes=outcomes, features=features
    )
    R = policy_rewards(make_synthetic(4000, random_state=7).true_effects, WEIGHTS)
    ref = GreedyTreePolicyLearner(max_depth=3, min_segment_size=0.02).fit_rewards(
        data.features, R, arms=data.arms, schema=data.schema
    )
    cols, names, kinds, cmap = feature_columns(data.features, data.schema)
    layout = bin_layout(cols, names, kinds, cmap, 256)
    chunks = [
        (bin_codes(layout, [c[ix] for c in cols]), R[ix])
        for ix in np.array_split(np.arange(len(R)), 3)
    ]

    def run(request: PassRequest) -> PassResult:
        parts = [partition_statistics(b, r, request) for b, r in chunks]
        return PassResult(*(sum(getattr(p, k) for p in parts) for k in "HCTN"))

    first = run(PassRequest((), (0,), ()))
    layout = layout.__class__(**{**layout.__dict__, "has_missing": first.C[0, :, -1] > 0})
    rule = SplitRule(layout, SummedRewards(), 3, 80, 1e-9 * float(np.abs(R).max()))
    root = grow_levels(rule, (len(R), first.H[0], first.C[0]), run)
    grown = finish_tree(root, layout, names, kinds, data.arms)
    assert grown.segments == ref.policy_.segments
    assert data.arms[grown.default] == ref.policy_.default_arm
    assert grown.reward == pytest.approx(ref.reward_, rel=1e-12)


@pytest.mark.parametrize("max_depth", [0, 2, 3])
def test_dask_greedy_tree_equals_in_memory(scaled, max_depth):
    exp, preds, _ = scaled
    params = {
        "max_depth": max_depth,
        "min_segment_size": 0.03,
        "n_bins": 64,
        "outcome_weights": WEIGHTS,
        "random_state": 0,
    }
    dask_fit = DaskGreedyTreeLearner(**params).fit(exp, preds)
    data, pred = _in_memory(exp, preds)
    ref = GreedyTreePolicyLearner(**params).fit(data, pred)
    assert dask_fit.n_units_ == data.n_units
    assert dask_fit.policy_.segments == ref.policy_.segments  # conditions, thresholds, arms
    assert dask_fit.policy_.default_arm == ref.policy_.default_arm
    assert dask_fit.policy_.to_dict() == ref.policy_.to_dict()
    assert dask_fit.reward_ == pytest.approx(ref.reward_, rel=1e-10)
    assert [leaf.n for leaf in dask_fit.leaves_] == [leaf.n for leaf in ref.leaves_]
    if max_depth >= 2:  # the learned direction of x1's missing values is part of the tree
        assert any(c.missing is not None for s in ref.policy_.segments for c in s.conditions)
    local = dask_fit.to_local()
    assert type(local) is GreedyTreePolicyLearner
    np.testing.assert_array_equal(local.predict(data), ref.predict(data))


def test_dask_greedy_tree_from_a_model(scaled):
    """A model predicting every partition in every pass grows the tree of its stored
    predictions."""
    exp, preds, model = scaled
    params = {"max_depth": 2, "min_segment_size": 0.03, "outcome_weights": WEIGHTS}
    from_model = DaskGreedyTreeLearner(**params).fit(exp, model=model)
    stored = DaskGreedyTreeLearner(**params).fit(exp, preds)
    assert from_model.policy_.to_dict() == stored.policy_.to_dict()
    assert from_model.reward_ == pytest.approx(stored.reward_, rel=1e-12)
    with pytest.raises(ConfigurationError, match="either 'predictions' or 'model'"):
        DaskGreedyTreeLearner().fit(exp)
    with pytest.raises(ConfigurationError, match="'split' must be None or one of"):
        DaskGreedyTreeLearner().fit(exp, preds, split="training")


@pytest.mark.parametrize("honest", [False, True])
def test_dask_distill_equals_in_memory_estimates(scaled, honest):
    """With every unit in the structure sample (not honest) the segments and their honest
    estimates equal DistillHTE's; honest: the estimates over the other units equal the
    in-memory estimates of the same trees on those units."""
    from pex_tuner.distributed.distill import DaskDistillHTE
    from pex_tuner.explain import DistillHTE

    exp, preds, _ = scaled
    params = {"max_depth": 2, "min_units_per_arm": 20, "random_state": 0}
    size = exp.n_units if not honest else 1500
    dask_fit = DaskDistillHTE(honest=honest, max_structure_units=size, **params).fit(exp, preds)
    data, pred = _in_memory(exp, preds, split=None)
    if not honest:
        ref = DistillHTE(honest=False, **params).fit(data, predictions=pred)
        assert len(ref.segments_) > len(data.arms) - 1  # some arm has several segments
        pd.testing.assert_frame_equal(dask_fit.segments_, ref.segments_, rtol=1e-9)
        np.testing.assert_array_equal(
            dask_fit.predict_segment(data).to_numpy(), ref.predict_segment(data).to_numpy()
        )
        return
    assert 0 < dask_fit.n_structure_ < 0.5 * exp.n_units
    assert dask_fit.n_structure_ + dask_fit.n_estimation_ == exp.n_units
    seg = dask_fit.predict_segment(data)
    est = ~_structure_units(exp, 0, size)
    from pex_tuner.explain.estimates import segment_effect

    for _, row in dask_fit.segments_.iterrows():
        k = data.arms.index(row["treatment"])
        inside = est & (seg[row["treatment"]].to_numpy() == row["segment"])
        tr, ct = inside & (data.treatment == k), inside & (data.treatment == 0)
        eff, lo, hi = segment_effect(
            data.Y[tr], data.propensity[tr], data.Y[ct], data.propensity[ct]
        )
        assert row["n_units"] == inside.sum()
        got = [row[f"{c}[{o}]"] for c in ("effect", "ci_low", "ci_high") for o in data.outcomes]
        np.testing.assert_allclose(got, np.concatenate([eff, lo, hi]), rtol=1e-9)


def _structure_units(exp, seed, size):
    from pex_tuner.distributed.hashing import sample_key

    pdf = exp.ddf.compute()
    return sample_key(pdf["_unit_hash"].to_numpy(), seed) < min(0.5, size / exp.n_units)
