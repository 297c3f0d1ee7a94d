"""CATE models for partitioned experiments, cross-fitted over unit-hash folds.

Two modes:

* ``"sample"`` (default, after dask-ml's ``ParallelPostFit``): fit the in-memory
  :class:`~pex_tuner.effects.CateModel` on a stratified sample of the train split small enough
  for one worker, then predict every unit partition by partition;
* ``"lightgbm.dask"``: a T-learner whose per-(arm, outcome) regressions are trained on all
  train-split units with LightGBM's own data-parallel ``lightgbm.dask.DaskLGBMRegressor``
  (needs a ``dask.distributed`` client), then brought back with ``to_local()`` for prediction.

Cross-fitting uses the experiment's ``_fold`` column (a function of the unit hash): the model
of fold f is fitted on training units of the other folds, and every unit, whatever its split,
is predicted by the model of its own fold. So every unit's prediction is out of fold, at any
scale, and predicting costs one model per unit rather than an average over folds.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pex_tuner.checks import Options, is_int, param_error, validate_params
from pex_tuner.data import ExperimentData
from pex_tuner.effects import CateModel
from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.errors import ConfigurationError, NotFittedError

if TYPE_CHECKING:  # pragma: no cover
    from pex_tuner.distributed.experiment import DistributedExperiment

__all__ = ["MODES", "DistributedCateModel", "fit_effects_distributed"]

MODES = ("sample", "lightgbm.dask")


class TLearnerFold:
    """One hash fold's T-learner: a plain regressor per (arm, outcome), mu[k, j](x).

    Fitted in memory on a sample (``fit``) or brought back from ``lightgbm.dask``.

    Attributes:
        models: ``models[k][j]`` predicts outcome j under arm k (plain LGBMRegressor).
    """

    def __init__(self, models: list[list[Any]], arms: tuple[str, ...], outcomes: tuple[str, ...]):
        self.models = models
        self.arms = arms
        self.outcomes = outcomes

    @classmethod
    def fit(
        cls, data: ExperimentData, base: Any, min_leaf_units: int | None = None
    ) -> TLearnerFold:
        """Fit ``clone(base)`` (LightGBM by default) per arm and outcome on ``data``."""
        from sklearn.base import clone

        from pex_tuner.effects.cate import default_base_learner

        models: list[list[Any]] = []
        for k in range(data.n_arms):
            rows = data.treatment == k
            row = []
            for j in range(data.n_outcomes):
                if base is None:
                    reg = default_base_learner(None, min_arm_units=int(rows.sum()))
                else:
                    reg = clone(base)
                row.append(reg.fit(data.X[rows], data.Y[rows, j]))
            models.append(row)
        return cls(models, data.arms, data.outcomes)

    def predict(self, data: ExperimentData, out_of_fold: str = "never") -> EffectPredictions:
        """mu of shape (n, K, J) from the per-arm models, tau = mu - mu[:, :1]."""
        mu = np.stack(
            [np.column_stack([m.predict(data.X) for m in row]) for row in self.models], axis=1
        )
        return EffectPredictions(
            tau=mu - mu[:, :1, :], mu=mu, arms=self.arms, outcomes=self.outcomes
        )


class DistributedCateModel:
    """Cross-fitted CATE model for a DistributedExperiment (scikit-learn contract).

    Args:
        mode: ``"sample"`` (default) or ``"lightgbm.dask"`` (see the module docstring).
        sample_size: units of the train split the sample-mode model is fitted on.
        learner: meta-learner of the sample mode (``"t"``, ``"x"``, ``"s"``, ``"dr"``).
        base_learner: scikit-learn regressor of the sample mode (LightGBM by default).
        inner_folds: None (default) fits, per hash fold, a plain T-learner (one regressor per
            arm and outcome: the hash folds already cross-fit, so each unit's prediction costs
            K x J models); an integer >= 2 fits a CateModel with that many folds of its own
            instead (needed for the "x", "s" and "dr" learners, which default to 2).
        cross_fit: one model per hash fold (default); False fits one model on the sample and
            predicts every unit with it (training units then get in-sample predictions).
        lgbm_params: parameters of ``DaskLGBMRegressor`` in the lightgbm.dask mode.
        random_state: seed.

    Fitted attributes:
        fold_models_: one fitted model per hash fold (or one when not cross-fitting).
        out_of_fold_: whether every unit's prediction is out of fold.
        n_train_: units the models were fitted on; fit_seconds_: wall time of ``fit``.
    """

    def __init__(
        self,
        *,
        mode: str = "sample",
        sample_size: int = 1_000_000,
        learner: str = "t",
        base_learner: Any = None,
        inner_folds: int | None = None,
        cross_fit: bool = True,
        lgbm_params: dict[str, Any] | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.mode = mode
        self.sample_size = sample_size
        self.learner = learner
        self.base_learner = base_learner
        self.inner_folds = inner_folds
        self.cross_fit = cross_fit
        self.lgbm_params = lgbm_params
        self.random_state = random_state

    def _check_params(self) -> None:
        validate_params({"mode": self.mode}, {"mode": [Options(MODES)]})
        if not is_int(self.sample_size) or self.sample_size < 100:
            raise param_error("sample_size", "an integer >= 100", self.sample_size)
        validate_params({"learner": self.learner}, {"learner": [Options(("t", "x", "s", "dr"))]})
        if self.inner_folds is not None and (not is_int(self.inner_folds) or self.inner_folds < 2):
            raise param_error("inner_folds", "None or an integer >= 2", self.inner_folds)

    def fit(self, experiment: DistributedExperiment, *, split: str = "train") -> Any:
        """Fit on the ``split`` units of ``experiment``; returns self."""
        self._check_params()
        start = time.perf_counter()
        self.arms_, self.outcomes_ = experiment.arms, experiment.outcomes
        self.n_folds_ = experiment.n_folds if self.cross_fit else 1
        if self.mode == "sample":
            self._fit_sample(experiment, split)
        else:
            self._fit_lightgbm_dask(experiment, split)
        self.out_of_fold_ = bool(self.cross_fit)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _fit_sample(self, experiment: DistributedExperiment, split: str) -> None:
        frame = experiment.sample_frame(self.sample_size, self.random_state or 0, split=split)
        data = experiment.to_local(frame)
        folds = frame["_fold"].to_numpy()
        self.n_train_ = data.n_units
        models: list[Any] = []
        for f in range(self.n_folds_):
            rows = folds != f if self.cross_fit else np.ones(data.n_units, dtype=bool)
            part = data.subset(rows)
            if self.learner == "t" and self.inner_folds is None:
                models.append(TLearnerFold.fit(part, self.base_learner))
                continue
            model = CateModel(
                learner=self.learner,
                base_learner=self.base_learner,
                n_folds=self.inner_folds or 2,
                random_state=self.random_state,
                progress=False,
            )
            models.append(model.fit(part))
        self.fold_models_ = models

    def _fit_lightgbm_dask(self, experiment: DistributedExperiment, split: str) -> None:
        from lightgbm.dask import DaskLGBMRegressor

        params = {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15, "verbose": -1}
        params.update(self.lgbm_params or {})
        ddf = experiment.ddf[experiment.ddf["_split"] == split]
        encoder = experiment.encoder
        X_meta = pd.DataFrame({n: pd.Series(dtype="float64") for n in encoder.schema.encoded_names})
        X_all = ddf.map_partitions(_encoded_frame, encoder, meta=X_meta)
        arm = ddf.map_partitions(_arm_series, encoder, meta=pd.Series(dtype="int64"))
        models: list[TLearnerFold] = []
        self.n_train_ = len(ddf)
        for f in range(self.n_folds_):
            fold_rows = ddf["_fold"] != f if self.cross_fit else ddf["_fold"] >= 0
            per_arm: list[list[Any]] = []
            for k in range(len(self.arms_)):
                rows = fold_rows & (arm == k)
                X = X_all[rows].to_dask_array(lengths=True)
                row_models = []
                for outcome in self.outcomes_:
                    y = ddf[outcome][rows].to_dask_array(lengths=True)
                    reg = DaskLGBMRegressor(random_state=self.random_state, **params)
                    row_models.append(reg.fit(X, y).to_local())
                per_arm.append(row_models)
            models.append(TLearnerFold(per_arm, self.arms_, self.outcomes_))
        self.fold_models_ = models

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "fold_models_"):
            raise NotFittedError(
                "This DistributedCateModel instance is not fitted yet. Call 'fit' with a "
                "DistributedExperiment first."
            )

    def predict_partition(self, data: ExperimentData, folds: np.ndarray) -> EffectPredictions:
        """Predictions of one partition, each unit by its hash fold's model.

        Args:
            data: the partition's units; folds: their ``_fold`` values, shape (n_units,).

        Returns:
            EffectPredictions with tau and mu of shape (n_units, n_arms, n_outcomes).
        """
        self._check_fitted()
        K, J = len(self.arms_), len(self.outcomes_)
        tau, mu = np.zeros((data.n_units, K, J)), np.zeros((data.n_units, K, J))
        which = np.asarray(folds) % len(self.fold_models_)
        for f, model in enumerate(self.fold_models_):
            rows = np.flatnonzero(which == f)
            if len(rows):
                p = model.predict(_rows(data, rows), out_of_fold="never")
                tau[rows], mu[rows] = p.tau, p.mu
        return EffectPredictions(
            tau=tau, mu=mu, arms=self.arms_, outcomes=self.outcomes_, out_of_fold=self.out_of_fold_
        )

    def predict(self, data: ExperimentData, out_of_fold: str = "never") -> EffectPredictions:
        """Predictions for new units: the average of the fold models, shape (n, K, J)."""
        self._check_fitted()
        if out_of_fold != "never":
            raise ConfigurationError(
                "DistributedCateModel.predict averages the fold models (out_of_fold='never'); "
                "out-of-fold predictions come from DistributedPredictions.compute"
            )
        preds = [m.predict(data, out_of_fold="never") for m in self.fold_models_]
        return EffectPredictions(
            tau=np.mean([p.tau for p in preds], axis=0),
            mu=np.mean([p.mu for p in preds], axis=0),
            arms=self.arms_,
            outcomes=self.outcomes_,
        )


def _rows(data: ExperimentData, rows: np.ndarray) -> ExperimentData:
    """The units at ``rows`` (no arm check: a partition may lack an arm)."""
    if len(rows) == data.n_units:
        return data
    from dataclasses import replace

    return replace(
        data,
        features=data.features.iloc[rows].reset_index(drop=True),
        X=data.X[rows],
        treatment=data.treatment[rows],
        Y=data.Y[rows],
        propensity=data.propensity[rows],
        unit_ids=None if data.unit_ids is None else data.unit_ids[rows],
    )


def _arm_series(pdf: pd.DataFrame, encoder: Any) -> pd.Series:
    return pd.Series(encoder.arm_codes(pdf[encoder.treatment]), index=pdf.index)


def _encoded_frame(pdf: pd.DataFrame, encoder: Any) -> pd.DataFrame:
    X = encoder.schema.encode(pdf[list(encoder.schema.names)], validate=False)
    return pd.DataFrame(X, columns=list(encoder.schema.encoded_names), index=pdf.index)


def fit_effects_distributed(
    experiment: DistributedExperiment, *, split: str = "train", **params: Any
) -> DistributedCateModel:
    """Fit a :class:`DistributedCateModel` (keyword arguments as its constructor)."""
    return DistributedCateModel(**params).fit(experiment, split=split)
