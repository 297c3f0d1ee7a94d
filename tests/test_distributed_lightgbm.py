"""CATE mode (b): T-learner regressions trained with lightgbm.dask (slow: a process cluster)."""

from __future__ import annotations

import numpy as np
import pytest

dd = pytest.importorskip("dask.dataframe")
pytest.importorskip("lightgbm.dask")

from pex_tuner.datasets import make_synthetic  # noqa: E402
from pex_tuner.distributed import (  # noqa: E402
    DistributedCateModel,
    DistributedExperiment,
    DistributedPredictions,
)
from pex_tuner.distributed.client import local_cluster  # noqa: E402


@pytest.mark.slow
def test_lightgbm_dask_mode_predicts_every_unit(tmp_path):
    # LightGBM's network is per process: the workers must be processes
    client = local_cluster(2, dashboard_address=None, memory_limit="2GiB")
    try:
        frame = make_synthetic(4000, random_state=2).data.to_frame()
        exp = DistributedExperiment.from_dask(
            dd.from_pandas(frame, npartitions=4),
            treatment="arm",
            control="control",
            outcomes={"engagement": "max", "retention": "max", "cost": "min"},
            unit_id="unit_id",
            n_folds=2,
        )
        model = DistributedCateModel(
            mode="lightgbm.dask", cross_fit=False, lgbm_params={"n_estimators": 10}
        ).fit(exp)
        assert model.n_train_ == exp.split_counts()["train"]
        preds = DistributedPredictions.compute(exp, model, tmp_path / "preds")
        first = preds.partition(0)
        assert first.tau.shape[1:] == (4, 3) and np.isfinite(first.mu).all()
        np.testing.assert_array_equal(first.tau[:, 0], 0.0)
        assert not preds.out_of_fold
    finally:
        client.close()
        client.cluster.close()
