"""Learner selection: picks the learner that truth says is best, table, errors, determinism."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pex_tuner.datasets import make_synthetic
from pex_tuner.effects import (
    CateModel,
    LearnerSelection,
    dr_pseudo_outcomes,
    score_learners,
    select_learner,
)
from pex_tuner.errors import ConfigurationError, InputDataError

ALL = ("t", "x", "dr", "s")


def _fit_all(data, learners, seed):
    return {
        name: CateModel(learner=name, n_folds=3, random_state=seed, progress=False).fit(data)
        for name in learners
    }


def _true_mse(models, truth):
    """True effect MSE of each model's out-of-fold predictions, over arms and outcomes."""
    return {n: float(((m.oof_predictions_.tau - truth) ** 2).mean()) for n, m in models.items()}


@pytest.fixture(scope="module")
def flat():
    """No heterogeneity, a strong baseline: the S-learner is right, T and DR overfit noise."""
    return make_synthetic(4000, n_treatments=1, n_outcomes=2, heterogeneity=0.0, random_state=3)


@pytest.fixture(scope="module")
def flat_selection(flat):
    return select_learner(flat.data, n_folds=3, random_state=3, progress=False)


@pytest.fixture(scope="module")
def flat_models(flat):
    return _fit_all(flat.data, ALL, 3)


def test_picks_the_s_learner_when_effects_are_constant(flat, flat_selection, flat_models):
    mse = _true_mse(flat_models, flat.true_effects)
    assert min(mse, key=mse.get) == "s"
    assert flat_selection.learner == "s"
    assert flat_selection.criterion == "dr_loss"
    # clearly: every other learner is more than two standard errors behind
    others = flat_selection.scores.iloc[1:]
    assert (others["diff"] > 2 * others["diff_se"]).all()


def test_picks_a_heterogeneous_learner_when_effects_vary():
    """Strong heterogeneity, little noise: S (which can ignore the arm) is worst, and the
    criterion's pick has the lowest true MSE."""
    exp = make_synthetic(4000, n_treatments=1, n_outcomes=2, heterogeneity=3.0, noise=0.2)
    models = _fit_all(exp.data, ("t", "dr", "s"), 0)
    scores = score_learners(exp.data, models)
    mse = _true_mse(models, exp.true_effects)
    assert scores["learner"].iloc[0] == min(mse, key=mse.get) != "s"
    assert scores["learner"].iloc[-1] == "s" == max(mse, key=mse.get)


def test_chosen_model_is_the_direct_fit(flat, flat_selection, flat_models):
    direct = flat_models[flat_selection.learner]
    np.testing.assert_array_equal(
        flat_selection.model.oof_predictions_.tau, direct.oof_predictions_.tau
    )
    np.testing.assert_array_equal(
        flat_selection.model.oof_predictions_.mu, direct.oof_predictions_.mu
    )
    new = make_synthetic(200, n_treatments=1, n_outcomes=2, random_state=99).data
    np.testing.assert_array_equal(flat_selection.model.predict(new).tau, direct.predict(new).tau)
    assert flat_selection.model.learner == flat_selection.learner


def test_same_seed_same_scores(flat, flat_selection, flat_models):
    again = score_learners(flat.data, flat_models)
    cols = [c for c in again.columns if c != "fit_seconds"]
    pd.testing.assert_frame_equal(again[cols], flat_selection.scores[cols])
    small = flat.data.subset(np.arange(1500))
    a = select_learner(small, candidates=("s", "x"), n_folds=3, random_state=1, progress=False)
    b = select_learner(small, candidates=("s", "x"), n_folds=3, random_state=1, progress=False)
    pd.testing.assert_frame_equal(
        a.scores.drop(columns="fit_seconds"), b.scores.drop(columns="fit_seconds")
    )


def test_scores_table(flat, flat_selection):
    s = flat_selection.scores
    assert list(s.columns) == [
        "learner",
        "rank",
        "score",
        "diff",
        "diff_se",
        "within_1se",
        "score[engagement]",
        "score[retention]",
        "fit_seconds",
    ]
    assert sorted(s["learner"]) == sorted(ALL) and list(s["rank"]) == [1, 2, 3, 4]
    assert s["score"].is_monotonic_increasing and s["diff"].iloc[0] == 0.0
    assert (s["fit_seconds"] > 0).all() and s["within_1se"].iloc[0]
    # the overall score is the mean of the per-outcome scores (one treatment arm here)
    np.testing.assert_allclose(
        s["score"], s[["score[engagement]", "score[retention]"]].mean(axis=1)
    )
    assert flat_selection.n_units == flat.data.n_units
    text = str(flat_selection)
    assert "dr_loss" in text and "S-learner" in text and "chosen: S-learner" in text
    assert text == flat_selection.to_text()


def test_to_dict_round_trip(flat_selection):
    d = json.loads(json.dumps(flat_selection.to_dict()))
    back = LearnerSelection.from_dict(d)
    assert back.learner == flat_selection.learner and back.model is None
    pd.testing.assert_frame_equal(back.scores, flat_selection.scores)
    assert back.to_text() == flat_selection.to_text()


def test_without_t_candidate_fits_a_common_nuisance(flat):
    small = flat.data.subset(np.arange(1500))
    sel = select_learner(small, candidates=("s",), n_folds=3, random_state=0, progress=False)
    assert sel.learner == "s" and len(sel.scores) == 1
    with pytest.raises(ConfigurationError, match="needs nuisance="):
        score_learners(small, {"s": sel.model})


def test_any_scikit_learn_regressor_as_base(flat):
    from sklearn.linear_model import Ridge

    small = flat.data.subset(np.arange(1500))
    sel = select_learner(
        small, candidates=("t", "s"), base_learner=Ridge(), n_folds=3, progress=False
    )
    assert set(sel.scores["learner"]) == {"t", "s"}
    assert isinstance(sel.model.base_learner, Ridge)


def test_pseudo_outcomes_are_unbiased(flat):
    """With the true surfaces as mu, G - tau is pure noise with mean ~0."""
    mu = flat.potential_outcomes
    G = dr_pseudo_outcomes(flat.data, mu)
    assert G.shape == mu.shape and (G[:, 0] == 0).all()
    err = (G - flat.true_effects)[:, 1]
    assert (np.abs(err.mean(0)) < 4 * err.std(0) / np.sqrt(len(err))).all()
    with pytest.raises(InputDataError, match="mu has shape"):
        dr_pseudo_outcomes(flat.data, mu[:, :, :1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"candidates": ("t", "q", "lasso")},
            "The 'candidates' parameter has unknown learner(s) ['q', 'lasso']; allowed "
            "learners are ['t', 'x', 's', 'dr'].",
        ),
        (
            {"candidates": ["s", "t", "s"]},
            "The 'candidates' parameter lists ['s'] more than once; give each learner once.",
        ),
        (
            {"candidates": ()},
            "The 'candidates' parameter must be a non-empty sequence of learner names from "
            "['t', 'x', 's', 'dr']. Got () instead.",
        ),
        (
            {"candidates": "ts"},
            "The 'candidates' parameter must be a non-empty sequence of learner names from "
            "['t', 'x', 's', 'dr']. Got 'ts' instead.",
        ),
        (
            {"n_folds": 1},
            "The 'n_folds' parameter must be an int >= 2. Got 1 instead.",
        ),
        (
            {"random_state": -1},
            "The 'random_state' parameter must be an int >= 0 or None. Got -1 instead.",
        ),
        (
            {"progress": "yes"},
            "The 'progress' parameter must be a bool or None. Got 'yes' instead.",
        ),
        (
            {"n_jobs": 0},
            "The 'n_jobs' parameter must be an int >= 1. Got 0 instead.",
        ),
        (
            {"base_learner": "lightgbm"},
            "The 'base_learner' parameter must be a scikit-learn regressor with fit and "
            "predict. Got str instead.",
        ),
    ],
)
def test_bad_options(flat, kwargs, message):
    with pytest.raises(ConfigurationError) as info:
        select_learner(flat.data, **kwargs)
    assert str(info.value) == message


def test_bad_data():
    with pytest.raises(InputDataError, match="fit expects an ExperimentData"):
        select_learner(np.zeros((10, 2)))


def test_parallel_fits_give_the_same_selection(flat, flat_selection):
    """n_jobs=2 fits the candidates in two processes: same scores, same chosen model."""
    par = select_learner(flat.data, n_folds=3, random_state=3, progress=False, n_jobs=2)
    cols = ["learner", "rank", "score", "diff", "diff_se"]
    pd.testing.assert_frame_equal(par.scores[cols], flat_selection.scores[cols])
    assert np.array_equal(par.model.oof_predictions_.tau, flat_selection.model.oof_predictions_.tau)
