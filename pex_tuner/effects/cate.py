"""Cross-fitted CATE models: one effect per (treatment arm vs control, outcome).

The meta-learners are econml's (``TLearner``, ``XLearner``, ``SLearner``, ``DRLearner``),
fitted one outcome at a time: LightGBM and most scikit-learn regressors take one target, and
econml's DRLearner rejects several outcomes at once.

Cross-fitting: the units are split into ``n_folds`` folds stratified by arm; for every fold the
learner is fitted on the other folds and predicts the held-out fold. The training units thus get
out-of-fold predictions (what OPE and policy learning on training data must use, or an
overfitted model grades its own homework), and new units get the average of the fold models.

Outcome surfaces ``mu[n, k, j]`` (for the direct method and doubly robust OPE) are
``mu_0(x) + tau_k(x)``, where ``mu_0`` is the learner's own control-arm regression (T- and
X-learner) or a separate cross-fitted control-arm regression with the same base learner
(S- and DR-learner). For the T-learner this is exactly its per-arm regressions.

Missing feature values reach the models as NaN (``allow_missing=True`` on every econml
meta-learner): LightGBM, the default base learner, learns where missing values go at each
split. A base learner that cannot take NaN fails before the first fold with a message naming
the features that have missing values; a learned propensity model (unit-varying logged
propensities) imputes the median and adds missing indicators first.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from pex_tuner.checks import Options, is_int, param_error, validate_params
from pex_tuner.data import ExperimentData, _feature_matrix
from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.errors import ConfigurationError, InputDataError, NotFittedError
from pex_tuner.progress import progress_bar
from pex_tuner.schema import FeatureSchema

__all__ = ["LEARNERS", "CateModel", "default_base_learner", "fingerprint", "fit_effects"]

LEARNERS = ("t", "x", "s", "dr")


def default_base_learner(
    random_state: int | None = None, *, min_arm_units: int | None = None
) -> Any:
    """LightGBM regressor with conservative settings for noisy experiment outcomes.

    Args:
        random_state: seed.
        min_arm_units: units of the smallest arm one model is fitted on (per fold). Leaves
            need ``min_child_samples`` units: 40 by default, but at most a tenth of the
            smallest arm (not below 5), because with 40 a model fitted on fewer than 80 units
            cannot split at all and silently predicts a constant (seen with Distill-HTE's
            honest half of a 300-unit trial: one constant effect per fold).
    """
    from lightgbm import LGBMRegressor

    leaf = 40 if min_arm_units is None else int(np.clip(min_arm_units // 10, 5, 40))

    return LGBMRegressor(
        n_estimators=200,
        learning_rate=0.05,
        num_leaves=15,
        min_child_samples=leaf,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.9,
        reg_lambda=1.0,
        random_state=random_state,
        # one thread per model: experiment-sized fits are too small to gain from threads, and
        # OpenMP busy-waiting next to other busy processes slows them by an order of magnitude
        n_jobs=1,
        verbose=-1,
    )


def fingerprint(X: np.ndarray, treatment: np.ndarray) -> str:
    """Hash of the units a model was fitted on: features and arms, not outcomes.

    Args:
        X: encoded features, ndarray of shape (n_units, n_encoded).
        treatment: arm index of each unit, int ndarray of shape (n_units,).

    Returns:
        32 hex digits (BLAKE2b, 16 bytes); :meth:`CateModel.predict` compares it to find the
        training units, whose out-of-fold predictions it then returns.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(X).tobytes())
    h.update(np.ascontiguousarray(treatment).tobytes())
    return h.hexdigest()


class CateModel:
    """Cross-fitted CATE meta-learner for several arms and outcomes (scikit-learn contract).

    Args:
        learner: ``"t"`` (default), ``"x"``, ``"s"`` or ``"dr"``.
        base_learner: any scikit-learn regressor; LightGBM by default.
        n_folds: cross-fitting folds (>= 2).
        random_state: seed for folds and the default base learner.
        progress: show a progress bar (None: only in terminals / notebooks).

    Fitted attributes:
        arms_, outcomes_, schema_: what the model was fitted on.
        oof_predictions_: out-of-fold EffectPredictions for the training units.
        fold_models_: per fold, per outcome, the fitted (econml estimator, control model).
    """

    def __init__(
        self,
        *,
        learner: str = "t",
        base_learner: Any = None,
        n_folds: int = 5,
        random_state: int | None = None,
        progress: bool | None = None,
    ) -> None:
        self.learner = learner
        self.base_learner = base_learner
        self.n_folds = n_folds
        self.random_state = random_state
        self.progress = progress

    # ------------------------------------------------------------------ fitting
    def _check_params(self, data: ExperimentData) -> None:
        validate_params({"learner": self.learner}, {"learner": [Options(LEARNERS)]})
        if not is_int(self.n_folds) or self.n_folds < 2:
            raise param_error("n_folds", "an integer >= 2", self.n_folds)
        if self.base_learner is not None and not (
            hasattr(self.base_learner, "fit") and hasattr(self.base_learner, "predict")
        ):
            raise ConfigurationError(
                "The 'base_learner' parameter must be a scikit-learn regressor with fit and "
                f"predict. Got {type(self.base_learner).__name__} instead."
            )
        if not isinstance(data, ExperimentData):
            raise InputDataError(
                f"fit expects an ExperimentData, got {type(data).__name__}; build one with "
                "ExperimentData.from_frame"
            )
        counts = data.arm_counts
        small = {a: c for a, c in counts.items() if c < 2 * self.n_folds}
        if small:
            raise InputDataError(
                f"arm(s) {small} have too few units for {self.n_folds}-fold cross-fitting; "
                f"expected at least {2 * self.n_folds} units per arm"
            )

    def _base(self) -> Any:
        if self.base_learner is None:
            return default_base_learner(
                self.random_state, min_arm_units=getattr(self, "_min_arm_units", None)
            )
        return clone(self.base_learner)

    def _propensity_model(self, data: ExperimentData) -> Any:
        # In a randomized experiment with fixed design probabilities the empirical shares are
        # the right propensity model; with unit-varying logged propensities, learn them.
        p = data.propensity
        per_arm_constant = all(np.ptp(p[data.treatment == k]) < 1e-9 for k in range(data.n_arms))
        if per_arm_constant:
            return DummyClassifier(strategy="prior")
        if np.isnan(data.X).any():
            from sklearn.impute import SimpleImputer
            from sklearn.pipeline import make_pipeline

            return make_pipeline(
                SimpleImputer(strategy="median", add_indicator=True),
                LogisticRegression(max_iter=1000),
            )
        return LogisticRegression(max_iter=1000)

    def _check_missing_support(self, data: ExperimentData) -> None:
        """A user's base learner must take NaN when features have missing values: fit it on
        a few units first, so the failure names the features instead of a deep stack trace."""
        missing = {n: c for n, c in data.missing_counts.items() if c}
        if self.base_learner is None or not missing:
            return
        has_nan = np.isnan(data.X).any(axis=1)
        rows = np.r_[np.flatnonzero(has_nan)[:5], np.flatnonzero(~has_nan)[:5]]
        try:
            clone(self.base_learner).fit(data.X[rows], data.Y[rows, 0])
        except ValueError as exc:
            if "nan" not in str(exc).lower():
                raise
            listed = ", ".join(f"'{n}' ({c} missing)" for n, c in missing.items())
            raise InputDataError(
                f"base learner {type(self.base_learner).__name__} cannot take missing values, "
                f"and features {listed} have them; use a learner that handles NaN (the "
                "default LightGBM, or sklearn's HistGradientBoostingRegressor) or a Pipeline "
                "that imputes them first (SimpleImputer)"
            ) from exc

    def _make_estimator(self, data: ExperimentData) -> Any:
        cats = list(range(data.n_arms))
        if self.learner == "t":
            from econml.metalearners import TLearner

            return TLearner(models=self._base(), categories=cats, allow_missing=True)
        if self.learner == "x":
            from econml.metalearners import XLearner

            return XLearner(
                models=self._base(),
                propensity_model=self._propensity_model(data),
                categories=cats,
                allow_missing=True,
            )
        if self.learner == "s":
            from econml.metalearners import SLearner

            return SLearner(overall_model=self._base(), categories=cats, allow_missing=True)
        from econml.dr import DRLearner

        return DRLearner(
            model_propensity=self._propensity_model(data),
            model_regression=self._base(),
            model_final=self._base(),
            categories=cats,
            cv=2,
            random_state=self.random_state,
            allow_missing=True,
        )

    def fit(self, data: ExperimentData) -> CateModel:
        """Fit the cross-fitted learner on ``data``; returns self."""
        import warnings

        self._check_params(data)
        self._check_missing_support(data)
        # smallest arm within one fold's training part (sizes the default learner's leaves)
        counts = np.bincount(data.treatment, minlength=data.n_arms)
        self._min_arm_units = int(counts.min() * (self.n_folds - 1) / max(self.n_folds, 1))
        K, J = data.n_arms, data.n_outcomes
        folds = np.empty(data.n_units, dtype=np.int64)
        skf = StratifiedKFold(n_splits=self.n_folds, shuffle=True, random_state=self.random_state)
        for f, (_, test_idx) in enumerate(skf.split(data.X, data.treatment)):
            folds[test_idx] = f

        tau = np.zeros((data.n_units, K, J))
        mu0 = np.zeros((data.n_units, J))
        fold_models: list[list[tuple[Any, Any]]] = []
        bar = progress_bar(
            self.n_folds * J, f"fitting {self.learner.upper()}-learner", self.progress
        )
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=UserWarning)
                warnings.filterwarnings("ignore", category=FutureWarning)
                for f in range(self.n_folds):
                    tr = folds != f
                    te = ~tr
                    models_f: list[tuple[Any, Any]] = []
                    for j in range(J):
                        est, ctrl = self._fit_one(data, tr, j)
                        t_hat, m0_hat = self._predict_one(est, ctrl, data.X[te], K)
                        tau[te, 1:, j] = t_hat
                        mu0[te, j] = m0_hat
                        models_f.append((est, ctrl))
                        bar.update(1)
                    fold_models.append(models_f)
        finally:
            bar.close()

        self.arms_ = data.arms
        self.outcomes_ = data.outcomes
        self.directions_ = data.directions
        self.schema_ = data.schema
        self.n_features_in_ = data.X.shape[1]
        self.fold_models_ = fold_models
        self.folds_ = folds
        self.train_fingerprint_ = fingerprint(data.X, data.treatment)
        self.oof_predictions_ = EffectPredictions(
            tau=tau,
            mu=mu0[:, None, :] + tau,
            arms=data.arms,
            outcomes=data.outcomes,
            out_of_fold=True,
        )
        return self

    def _fit_one(self, data: ExperimentData, rows: np.ndarray, j: int) -> tuple[Any, Any]:
        est = self._make_estimator(data)
        X, T, y = data.X[rows], data.treatment[rows], data.Y[rows, j]
        est.fit(y, T, X=X)
        ctrl = None
        if self.learner in ("s", "dr"):
            ctrl = self._base().fit(X[T == 0], y[T == 0])
        return est, ctrl

    def _predict_one(
        self, est: Any, ctrl: Any, X: np.ndarray, K: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(tau of shape (n, K-1), mu_0 of shape (n,)) for one outcome."""
        if self.learner == "t":
            m0 = est.models[0].predict(X)
            t_hat = np.column_stack([est.models[k].predict(X) - m0 for k in range(1, K)])
            return t_hat, m0
        t_hat = np.asarray(est.const_marginal_effect(X)).reshape(len(X), K - 1)
        m0 = est.models[0].predict(X) if self.learner == "x" else ctrl.predict(X)
        return t_hat, m0

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "fold_models_"):
            raise NotFittedError(
                "This CateModel instance is not fitted yet. Call 'fit' with an ExperimentData "
                "first (or use pex_tuner.fit_effects)."
            )

    def predict(
        self, units: ExperimentData | pd.DataFrame | np.ndarray, *, out_of_fold: str = "auto"
    ) -> EffectPredictions:
        """Predict effects and outcome surfaces.

        Args:
            units: an ExperimentData, a DataFrame of raw features, or an encoded matrix of shape
                (n_units, n_encoded).
            out_of_fold: ``"auto"`` returns the out-of-fold predictions when ``units`` is the
                training experiment itself (same features and arms), otherwise the average of
                the fold models; ``"never"`` always averages the fold models.

        Returns:
            EffectPredictions with ``tau`` and ``mu`` of shape (n_units, n_arms, n_outcomes).
        """
        self._check_fitted()
        if out_of_fold not in ("auto", "never"):
            raise ConfigurationError(
                f"'out_of_fold' must be 'auto' or 'never'; got {out_of_fold!r}"
            )
        if (
            out_of_fold == "auto"
            and isinstance(units, ExperimentData)
            and units.n_units == self.oof_predictions_.n_units
            and fingerprint(units.X, units.treatment) == self.train_fingerprint_
        ):
            return self.oof_predictions_
        X = _feature_matrix(units, self.schema_, fitted="the model was")
        K, J = len(self.arms_), len(self.outcomes_)
        tau = np.zeros((len(X), K, J))
        mu0 = np.zeros((len(X), J))
        import warnings

        with warnings.catch_warnings():  # econml warns on every NaN input; they are data here
            warnings.filterwarnings("ignore", message="Input contains NaN", category=UserWarning)
            for models_f in self.fold_models_:
                for j, (est, ctrl) in enumerate(models_f):
                    t_hat, m0 = self._predict_one(est, ctrl, X, K)
                    tau[:, 1:, j] += t_hat
                    mu0[:, j] += m0
        tau /= len(self.fold_models_)
        mu0 /= len(self.fold_models_)
        return EffectPredictions(
            tau=tau, mu=mu0[:, None, :] + tau, arms=self.arms_, outcomes=self.outcomes_
        )

    @property
    def feature_schema(self) -> FeatureSchema:
        self._check_fitted()
        return self.schema_

    def __repr__(self) -> str:
        return (
            f"CateModel(learner={self.learner!r}, n_folds={self.n_folds}, "
            f"random_state={self.random_state!r})"
        )


def fit_effects(
    data: ExperimentData,
    *,
    learner: str = "t",
    base_learner: Any = None,
    n_folds: int = 5,
    random_state: int | None = None,
    progress: bool | None = None,
) -> CateModel:
    """Fit a cross-fitted CATE model per (treatment arm vs control, outcome).

    Args:
        data: the logged experiment (usually its train split).
        learner: ``"t"`` (default), ``"x"``, ``"s"`` or ``"dr"`` (econml meta-learners).
        base_learner: any scikit-learn regressor; LightGBM by default.
        n_folds: cross-fitting folds.
        random_state: seed.
        progress: progress bar (None: automatic).

    Returns:
        A fitted CateModel; ``model.predict(data)`` gives out-of-fold predictions for the
        training units and fold-averaged predictions for new units.
    """
    return CateModel(
        learner=learner,
        base_learner=base_learner,
        n_folds=n_folds,
        random_state=random_state,
        progress=progress,
    ).fit(data)
