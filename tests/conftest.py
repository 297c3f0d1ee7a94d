"""Shared fixtures: small synthetic experiments and fitted models (session scoped)."""

from __future__ import annotations

import numpy as np
import pytest

from pex_tuner.datasets import make_synthetic
from pex_tuner.effects import fit_effects


@pytest.fixture(scope="session")
def synth():
    """A 6,000-unit synthetic experiment with ground truth (4 arms, 3 outcomes)."""
    return make_synthetic(6000, random_state=11)


@pytest.fixture(scope="session")
def synth_parts(synth):
    return synth.split(random_state=0)


@pytest.fixture(scope="session")
def fitted(synth_parts):
    """T-learner fitted on the train split, with predictions on the test split."""
    model = fit_effects(synth_parts["train"].data, random_state=0, n_folds=3)
    return model, model.predict(synth_parts["test"].data)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def offline_dir(tmp_path_factory):
    """A small saved OfflineTuner (16 evaluations) on make_synthetic's default design."""
    from pex_tuner.tuning import OfflineTuner

    exp = make_synthetic(3000, random_state=5)
    tuner = OfflineTuner(
        exp.data,
        batch_size=4,
        init_trials=6,
        n_folds=2,
        random_state=0,
        progress=False,
        learner="t",
        design_size=0,  # Sobol inside Ax: 16 trials, quick
    )
    tuner.run(16)
    path = tmp_path_factory.mktemp("offline") / "tuner"
    tuner.save(str(path))
    return path
