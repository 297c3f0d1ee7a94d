"""CATE models: shapes, cross-fitting, accuracy against ground truth, errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from pex_tuner.effects import CateModel, EffectPredictions, fit_effects
from pex_tuner.errors import ConfigurationError, InputDataError, NotFittedError


def test_predictions_shapes_and_invariants(fitted, synth_parts):
    _model, pred = fitted
    test = synth_parts["test"].data
    assert isinstance(pred, EffectPredictions)
    assert pred.tau.shape == (test.n_units, 4, 3) and pred.mu.shape == pred.tau.shape
    assert pred.arms == test.arms and pred.outcomes == test.outcomes
    np.testing.assert_array_equal(pred.tau[:, 0, :], 0.0)
    np.testing.assert_allclose(pred.mu - pred.mu[:, :1, :], pred.tau, atol=1e-12)
    assert not pred.out_of_fold


def test_training_units_get_out_of_fold_predictions(fitted, synth_parts):
    model, _ = fitted
    train = synth_parts["train"].data
    oof = model.predict(train)
    assert oof.out_of_fold and oof is model.oof_predictions_
    averaged = model.predict(train, out_of_fold="never")
    assert not averaged.out_of_fold
    # in-sample (fold-averaged) predictions track the training outcomes more closely than the
    # honest out-of-fold ones: the overfitting that cross-fitting protects OPE from
    rows = np.arange(train.n_units)
    err_oof = np.mean((train.Y - oof.mu[rows, train.treatment]) ** 2)
    err_in = np.mean((train.Y - averaged.mu[rows, train.treatment]) ** 2)
    assert err_in < err_oof


def test_t_learner_recovers_true_effects(fitted, synth_parts):
    _, pred = fitted
    true = synth_parts["test"].true_effects
    # goal and guardrail effects are strongly heterogeneous; the model must find them
    for k in range(1, 4):
        for j in (0, 1):
            r = np.corrcoef(pred.tau[:, k, j], true[:, k, j])[0, 1]
            assert r > 0.35, (k, j, r)
    # average effects within 3.5 standard errors of a difference in means on the training data
    train = synth_parts["train"].data
    y, t = train.Y[:, 0], train.treatment
    for k in range(1, 4):
        se = np.sqrt(y[t == k].var() / (t == k).sum() + y[t == 0].var() / (t == 0).sum())
        assert abs(pred.ate[k, 0] - true.mean(0)[k, 0]) < 3.5 * se


@pytest.mark.parametrize("learner", ["x", "s", "dr"])
def test_other_learners(learner, synth_parts):
    train = synth_parts["train"].data.subset(np.arange(1500))
    test = synth_parts["test"]
    model = fit_effects(train, learner=learner, n_folds=2, random_state=0)
    pred = model.predict(test.data)
    r = np.corrcoef(pred.tau[:, 3, 0], test.true_effects[:, 3, 0])[0, 1]
    assert r > 0.3
    np.testing.assert_allclose(pred.mu - pred.mu[:, :1], pred.tau, atol=1e-12)


def test_any_sklearn_regressor_and_frame_input(synth_parts):
    train = synth_parts["train"].data.subset(np.arange(1000))
    model = fit_effects(train, base_learner=Ridge(alpha=1.0), n_folds=2)
    frame = synth_parts["test"].data.features.iloc[:50]
    pred = model.predict(frame)
    assert pred.tau.shape == (50, 4, 3)
    np.testing.assert_allclose(pred.tau, model.predict(synth_parts["test"].data.X[:50]).tau)


def test_errors(synth_parts):
    train = synth_parts["train"].data
    with pytest.raises(ConfigurationError, match=r"The 'learner' parameter must be one of"):
        fit_effects(train, learner="causal_forest")
    with pytest.raises(ConfigurationError, match=r"The 'n_folds' parameter must be an integer"):
        fit_effects(train, n_folds=1)
    with pytest.raises(ConfigurationError, match=r"The 'base_learner' parameter must be"):
        fit_effects(train, base_learner="lightgbm")
    with pytest.raises(NotFittedError, match="not fitted yet"):
        CateModel().predict(train)
    with pytest.raises(InputDataError, match="fit expects an ExperimentData"):
        CateModel().fit(train.to_frame())
    tiny = train.subset(
        np.r_[np.flatnonzero(train.treatment == 0)[:3], np.flatnonzero(train.treatment != 0)[:60]]
    )
    with pytest.raises(InputDataError, match=r"too few units for 5-fold cross-fitting"):
        fit_effects(tiny)


def test_predict_rejects_mismatched_units(fitted, synth_parts):
    model, _ = fitted
    frame = synth_parts["test"].data.features.iloc[:5].copy()
    frame["platform"] = ["android", "ios", "web", "tv", "web"]
    with pytest.raises(InputDataError, match=r"feature 'platform' has categories \['tv'\]"):
        model.predict(frame)
    with pytest.raises(InputDataError, match=r"feature matrix has shape \(5, 2\)"):
        model.predict(np.zeros((5, 2)))


def test_default_learner_splits_on_small_trials():
    """With 300 units over 4 arms (~60 per arm per fold) the default LightGBM leaves are sized
    down, so the model still learns heterogeneity instead of one constant per fold."""
    from pex_tuner.datasets import make_synthetic
    from pex_tuner.effects import CateModel

    exp = make_synthetic(300, random_state=3)
    model = CateModel(n_folds=5, random_state=0, progress=False).fit(exp.data)
    tau = model.predict(exp.data).tau[:, 1, 0]
    assert len(np.unique(tau.round(10))) > 50
    truth = exp.true_effects[:, 1, 0]
    assert np.corrcoef(tau, truth)[0, 1] > 0.1
