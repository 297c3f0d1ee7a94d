"""make_synthetic: the built-in default experiment, with competing outcomes and ground truth.

The generating process (all seeded by ``random_state``):

* features: ``n_features - 1`` numeric columns ``x0, x1, ...`` drawn iid N(0, 1), and a
  categorical ``platform`` in {android, ios, web} with shares 0.45 / 0.35 / 0.20;
* arms: ``control`` and ``arm_1 .. arm_T``, randomized with ``arm_probabilities`` (uniform by
  default), so the logged propensity is known exactly;
* outcomes (in this order, first ``n_outcomes`` of them): ``engagement`` (max, the goal),
  ``retention`` (max, the guardrail), ``cost`` (min), then ``metric_4 ...`` (max);
* effects: for arm k, let ``s_k(x) = <v_k, x> + c_k[platform]`` be an arm-specific score with a
  random direction v_k. The goal rises with ``relu(s_k)`` (units with high score respond), the
  guardrail *falls* with ``relu(s_k)`` for the same units while it rises a little elsewhere:
  the arm that wins the goal on average hurts the guardrail for part of the population, as
  with a UX layout that lifts clicks but loses some users. Every treatment saves a little cost
  (-0.1) but cost grows with the goal lift (+0.4 per unit of lift), so cost too trades off.
  ``heterogeneity`` scales every x-dependent part of the effects (0 gives constant effects);
* observed outcome: the mean potential outcome plus N(0, noise^2) noise per outcome;
* long-term outcome (not logged): ``0.5 * engagement effect + 1.5 * retention effect`` plus its
  own heterogeneous part, returned as ``long_term`` of shape (n_units, n_arms).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from pex_tuner.data import ExperimentData
from pex_tuner.datasets._truth import ExperimentWithTruth
from pex_tuner.errors import ConfigurationError
from pex_tuner.files import atomic_write, atomic_write_text

__all__ = ["SyntheticParquet", "make_synthetic", "write_synthetic_parquet"]

_OUTCOMES = (("engagement", "max"), ("retention", "max"), ("cost", "min"))
_PLATFORMS = ("android", "ios", "web")


def _relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0)


def make_synthetic(
    n_units: int = 20_000,
    *,
    n_treatments: int = 3,
    n_outcomes: int = 3,
    n_features: int = 6,
    heterogeneity: float = 1.0,
    noise: float = 1.0,
    long_term: bool = True,
    arm_probabilities: Sequence[float] | None = None,
    random_state: int | None = 0,
    design_seed: int = 0,
) -> ExperimentWithTruth:
    """Simulate a randomized A/B/n experiment with heterogeneous, competing effects.

    Args:
        n_units: number of units.
        n_treatments: treatment arms besides control (total arms = n_treatments + 1).
        n_outcomes: logged outcomes (>= 2: a goal and a guardrail, then cost, then extras).
        n_features: feature columns (>= 3: numeric ones plus one categorical ``platform``).
        heterogeneity: scale of the x-dependent part of every effect (>= 0).
        noise: standard deviation of the outcome noise (> 0).
        long_term: also simulate an unlogged long-term outcome.
        arm_probabilities: randomization probabilities, control first; uniform by default.
        random_state: seed of the units, the randomization and the noise.
        design_seed: seed of the effect structure (arm directions and platform shifts). Keep
            it fixed and vary ``random_state`` to draw fresh samples of the same experiment.

    Returns:
        ExperimentWithTruth with ``potential_outcomes`` of shape (n_units, n_arms, n_outcomes)
        and ``long_term`` of shape (n_units, n_arms) (or None).
    """
    probs = _check_arguments(
        n_units, n_treatments, n_outcomes, n_features, heterogeneity, noise, arm_probabilities
    )
    n_arms, d = n_treatments + 1, n_features - 1
    rng = np.random.default_rng(random_state)
    Xn = rng.standard_normal((n_units, d))
    platform = rng.choice(len(_PLATFORMS), size=n_units, p=[0.45, 0.35, 0.20])
    W = rng.choice(n_arms, size=n_units, p=probs)
    design = _draw_design(design_seed, n_arms, d, n_outcomes)

    h = float(heterogeneity)
    k = np.arange(n_arms, dtype=float)  # 0 for control
    tau = _effects(Xn, platform, design, h, n_outcomes)
    mu = _baseline_means(Xn, platform, n_outcomes)[:, None, :] + tau
    Y = mu[np.arange(n_units), W, :] + noise * rng.standard_normal((n_units, n_outcomes))

    lt = None
    if long_term:
        lt_tau = (
            0.5 * tau[:, :, 0]
            + 1.5 * tau[:, :, 1]
            + h * 0.1 * k * np.tanh(Xn @ design.long_term)[:, None]
        )
        lt_tau[:, 0] = 0.0
        lt = 1.0 + 0.2 * Xn[:, [0]] + lt_tau

    arms = ["control", *[f"arm_{i}" for i in range(1, n_arms)]]
    data = _logged_experiment(Xn, platform, W, Y, probs, arms)
    # ExperimentData orders arms control-first then sorted; arm_1..arm_T sort naturally for
    # T < 10, but reorder the truth by name to be safe.
    order = [arms.index(a) for a in data.arms]
    return ExperimentWithTruth(
        data=data,
        potential_outcomes=np.ascontiguousarray(mu[:, order, :]),
        long_term=None if lt is None else np.ascontiguousarray(lt[:, order]),
        name="synthetic",
    )


def _check_arguments(
    n_units: int,
    n_treatments: int,
    n_outcomes: int,
    n_features: int,
    heterogeneity: float,
    noise: float,
    arm_probabilities: Sequence[float] | None,
) -> np.ndarray:
    """Check make_synthetic's arguments; returns the arm probabilities, shape (n_arms,)."""
    if n_units < 10:
        raise ConfigurationError(f"'n_units' must be at least 10; got {n_units}")
    if n_treatments < 1:
        raise ConfigurationError(f"'n_treatments' must be at least 1; got {n_treatments}")
    if n_outcomes < 2:
        raise ConfigurationError(f"'n_outcomes' must be at least 2; got {n_outcomes}")
    if n_features < 3:
        raise ConfigurationError(f"'n_features' must be at least 3; got {n_features}")
    if heterogeneity < 0:
        raise ConfigurationError(f"'heterogeneity' must be >= 0; got {heterogeneity}")
    if noise <= 0:
        raise ConfigurationError(f"'noise' must be > 0; got {noise}")
    n_arms = n_treatments + 1
    if arm_probabilities is None:
        return np.full(n_arms, 1.0 / n_arms)
    probs = np.asarray(arm_probabilities, dtype=float)
    if probs.shape != (n_arms,) or (probs <= 0).any() or not np.isclose(probs.sum(), 1.0):
        raise ConfigurationError(
            f"'arm_probabilities' must be {n_arms} positive numbers summing to 1; got {list(probs)}"
        )
    return probs


class _Design(NamedTuple):
    """The effect structure, drawn from ``design_seed`` alone.

    Attributes:
        directions: arm directions v_k, shape (n_arms, d), unit norm.
        shifts: platform shifts c_k, shape (n_arms, n_platforms).
        extra: directions of the extra outcomes' effects, shape (n_outcomes - 3, n_arms, d).
        long_term: direction of the long-term outcome's own heterogeneity, shape (d,).
    """

    directions: np.ndarray
    shifts: np.ndarray
    extra: np.ndarray
    long_term: np.ndarray


def _draw_design(design_seed: int, n_arms: int, d: int, n_outcomes: int) -> _Design:
    """Arm-specific directions and platform shifts, from their own seed: the same design at
    every sample size, heterogeneity level and random_state."""
    design = np.random.default_rng(design_seed)
    V = design.standard_normal((n_arms, d))
    V[:, 2:] *= 0.3  # the first two features carry most of the heterogeneity
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    C = design.normal(0.0, 0.5, size=(n_arms, len(_PLATFORMS)))
    extra_dirs = design.standard_normal((max(n_outcomes - 3, 0), n_arms, d)) / np.sqrt(d)
    lt_dir = design.standard_normal(d) / np.sqrt(d)
    return _Design(V, C, extra_dirs, lt_dir)


def _baseline_means(Xn: np.ndarray, platform: np.ndarray, n_outcomes: int) -> np.ndarray:
    """Control-arm mean outcomes, shape (n_units, n_outcomes)."""
    d = Xn.shape[1]
    base = np.empty((len(Xn), n_outcomes))
    base[:, 0] = 2.0 + 0.5 * Xn[:, 0] + 0.3 * np.sin(Xn[:, 1]) + 0.2 * (platform == 1)
    base[:, 1] = 1.0 + 0.3 * Xn[:, 1] - 0.2 * (platform == 2)
    if n_outcomes > 2:
        base[:, 2] = 1.0 + 0.2 * np.abs(Xn[:, 0])
    for j in range(3, n_outcomes):
        base[:, j] = 0.5 * np.tanh(Xn[:, j % d])
    return base


def _effects(
    Xn: np.ndarray,
    platform: np.ndarray,
    design: _Design,
    h: float,
    n_outcomes: int,
    center: np.ndarray | None = None,
) -> np.ndarray:
    """True effects vs control, shape (n_units, n_arms, n_outcomes); zero for control.

    ``center``: the mean of relu(s_k) per arm, shape (n_arms,), subtracted from the goal's
    heterogeneous part; None takes the sample's mean (``make_synthetic``), the chunked writer
    passes the population mean so that every chunk has the same effect function.
    """
    n_arms = len(design.directions)
    k = np.arange(n_arms, dtype=float)  # 0 for control
    # arm scores s_k(x): shape (n_units, n_arms)
    S = Xn @ design.directions.T + design.shifts[:, platform].T
    tau = np.zeros((len(Xn), n_arms, n_outcomes))
    # ramp the average effects with the arm index: later arms are bolder
    ate_goal = 0.10 * k
    ate_guard = 0.08 - 0.02 * k
    mean_relu = _relu(S).mean(axis=0) if center is None else center
    tau[:, :, 0] = ate_goal + h * 0.6 * (_relu(S) - mean_relu)
    tau[:, :, 1] = ate_guard + h * (0.15 * _relu(-S) - 0.45 * _relu(S))
    if n_outcomes > 2:
        tau[:, :, 2] = -0.1 + 0.4 * _relu(tau[:, :, 0])
    for j in range(3, n_outcomes):
        tau[:, :, j] = 0.05 * k * np.sign(np.sin(k + j)) + h * 0.3 * np.tanh(
            Xn @ design.extra[j - 3].T
        )
    tau[:, 0, :] = 0.0
    return tau


def _logged_experiment(
    Xn: np.ndarray,
    platform: np.ndarray,
    W: np.ndarray,
    Y: np.ndarray,
    probs: np.ndarray,
    arms: list[str],
) -> ExperimentData:
    """The logged frame (unit_id, x0.., platform, arm, outcomes, propensity), validated."""
    n_outcomes = Y.shape[1]
    outcomes = [*_OUTCOMES[: min(n_outcomes, 3)]] + [
        (f"metric_{j + 1}", "max") for j in range(3, n_outcomes)
    ]
    frame = pd.DataFrame(Xn, columns=[f"x{i}" for i in range(Xn.shape[1])])
    frame["platform"] = np.asarray(_PLATFORMS, dtype=object)[platform]
    frame["arm"] = np.asarray(arms, dtype=object)[W]
    for j, (name, _) in enumerate(outcomes):
        frame[name] = Y[:, j]
    frame["propensity"] = probs[W]
    frame.insert(0, "unit_id", np.arange(len(Xn)))
    return ExperimentData.from_frame(
        frame,
        treatment="arm",
        control="control",
        outcomes=dict(outcomes),
        propensity="propensity",
        unit_id="unit_id",
        arms=arms,
    )


# ---------------------------------------------------------------------- chunked Parquet writer
_PLATFORM_SHARES = (0.45, 0.35, 0.20)
_INFO_FILE = "pex_synthetic.json"


class SyntheticParquet(NamedTuple):
    """A synthetic experiment written as a Parquet dataset.

    Attributes:
        path: the folder (one ``part.<i>.parquet`` file per chunk).
        n_units: rows written.
        options: the arguments of ``DistributedExperiment.from_parquet`` that read it back
            (``treatment``, ``control``, ``outcomes``, ``features``, ``propensity``,
            ``unit_id``): pass ``**options``. ``features`` must be named because the true
            mean potential outcomes sit in columns ``true[<arm>,<outcome>]`` beside them.
        truth_columns: ``truth_columns[k][j]`` names the column of arm k and outcome j (arms
            control first, in the experiment's order).
    """

    path: str
    n_units: int
    options: dict[str, Any]
    truth_columns: list[list[str]]


def _population_center(design: _Design) -> np.ndarray:
    """E[relu(s_k(x))] per arm over the population, shape (n_arms,): v_k . x ~ N(0, 1)."""
    from scipy.stats import norm

    c = design.shifts  # (n_arms, n_platforms)
    return (np.asarray(_PLATFORM_SHARES) * (c * norm.cdf(c) + norm.pdf(c))).sum(axis=1)


def _chunk_frame(
    start: int, n: int, seed: Any, design: _Design, probs: np.ndarray, opts: dict[str, Any]
) -> pd.DataFrame:
    """Rows ``start .. start + n - 1`` of the experiment, drawn as ``make_synthetic`` draws."""
    rng = np.random.default_rng(seed)
    n_arms, J = len(probs), opts["n_outcomes"]
    d = opts["n_features"] - 1
    Xn = rng.standard_normal((n, d))
    platform = rng.choice(len(_PLATFORMS), size=n, p=list(_PLATFORM_SHARES))
    W = rng.choice(n_arms, size=n, p=probs)
    tau = _effects(Xn, platform, design, opts["heterogeneity"], J, center=opts["center"])
    mu = _baseline_means(Xn, platform, J)[:, None, :] + tau
    Y = mu[np.arange(n), W, :] + opts["noise"] * rng.standard_normal((n, J))
    frame = pd.DataFrame({"unit_id": np.arange(start, start + n, dtype=np.int64)})
    for i in range(d):
        frame[f"x{i}"] = Xn[:, i]
    frame["platform"] = np.asarray(_PLATFORMS, dtype=object)[platform]
    arms = opts["arms"]
    frame["arm"] = np.asarray(arms, dtype=object)[W]
    for j, (name, _) in enumerate(opts["outcomes"]):
        frame[name] = Y[:, j]
    frame["propensity"] = probs[W]
    for k, arm in enumerate(arms):
        for j, (name, _) in enumerate(opts["outcomes"]):
            frame[f"true[{arm},{name}]"] = mu[:, k, j]
    return frame


def _chunk_options(
    design: _Design,
    n_treatments: int,
    n_outcomes: int,
    n_features: int,
    heterogeneity: float,
    noise: float,
) -> dict[str, Any]:
    """What every chunk shares: sizes, outcome names and directions, arm labels, the effect
    function's population centring."""
    return {
        "n_outcomes": n_outcomes,
        "n_features": n_features,
        "heterogeneity": float(heterogeneity),
        "noise": float(noise),
        "center": _population_center(design),
        "outcomes": [*_OUTCOMES[: min(n_outcomes, 3)]]
        + [(f"metric_{j + 1}", "max") for j in range(3, n_outcomes)],
        "arms": ["control", *[f"arm_{i}" for i in range(1, n_treatments + 1)]],
    }


def _write_chunk(
    target: Path,
    start: int,
    n: int,
    seed: Any,
    design: _Design,
    probs: np.ndarray,
    opts: dict[str, Any],
) -> None:
    frame = _chunk_frame(start, n, seed, design, probs, opts)
    atomic_write(target, lambda tmp: frame.to_parquet(tmp, index=False))


def _write_chunks(jobs: list[tuple], shared: tuple, parallel: bool, progress: bool | None) -> None:
    """Write every (target, start, n, seed) chunk, as Dask tasks or one after the other."""
    from pex_tuner.progress import progress_bar

    if parallel:
        import dask

        dask.compute(*[dask.delayed(_write_chunk)(*job, *shared) for job in jobs])
        return
    bar = progress_bar(len(jobs), "writing synthetic Parquet", progress)
    try:
        for job in jobs:
            _write_chunk(*job, *shared)
            bar.update(1)
    finally:
        bar.close()


def write_synthetic_parquet(
    path: str | Path,
    n_units: int,
    *,
    chunk_size: int = 1_000_000,
    n_treatments: int = 3,
    n_outcomes: int = 3,
    n_features: int = 6,
    heterogeneity: float = 1.0,
    noise: float = 1.0,
    arm_probabilities: Sequence[float] | None = None,
    random_state: int = 0,
    design_seed: int = 0,
    parallel: bool = False,
    progress: bool | None = None,
) -> SyntheticParquet:
    """Write ``make_synthetic``'s experiment, of any size, as Parquet, chunk by chunk.

    Memory is one chunk. Chunk i is drawn from the seed ``(random_state, i)``, and each file
    is written atomically, so an interrupted run resumes where it stopped (files already
    there are kept) and the same arguments always give the same data. Unlike
    ``make_synthetic`` the goal's heterogeneous part is centred by its population mean, so
    every chunk shares one effect function; there is no long-term outcome.

    Args:
        path: folder to write (created).
        n_units: total rows; chunk_size: rows per file.
        n_treatments, n_outcomes, n_features, heterogeneity, noise, arm_probabilities,
            random_state, design_seed: as in :func:`make_synthetic`.
        parallel: write the chunks as Dask tasks (on the current client, if any).
        progress: progress bar over chunks when not parallel (None: automatic).

    Returns:
        SyntheticParquet: where it is, and the ``from_parquet`` options that read it.
    """
    probs = _check_arguments(
        n_units, n_treatments, n_outcomes, n_features, heterogeneity, noise, arm_probabilities
    )
    if int(chunk_size) < 1:
        raise ConfigurationError(f"'chunk_size' must be a positive integer; got {chunk_size!r}")
    design = _draw_design(design_seed, n_treatments + 1, n_features - 1, n_outcomes)
    opts = _chunk_options(design, n_treatments, n_outcomes, n_features, heterogeneity, noise)
    outcomes, arms = opts["outcomes"], opts["arms"]
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    recipe = {
        "n_units": int(n_units),
        "chunk_size": int(chunk_size),
        "random_state": int(random_state),
        "design_seed": int(design_seed),
    }
    _check_resume(folder, recipe)
    n_chunks = -(-int(n_units) // int(chunk_size))
    width = max(5, len(str(n_chunks)))
    todo = [i for i in range(n_chunks) if not (folder / f"part.{i:0{width}d}.parquet").exists()]
    jobs = [
        (
            folder / f"part.{i:0{width}d}.parquet",
            i * int(chunk_size),
            min(int(chunk_size), int(n_units) - i * int(chunk_size)),
            (int(random_state), i),
        )
        for i in todo
    ]
    result = _parquet_info(folder, int(n_units), outcomes, arms, n_features)
    # written first, so that an interrupted run resumes (and a different one is refused)
    info = {**result._asdict(), "recipe": recipe}
    atomic_write_text(folder / _INFO_FILE, json.dumps(info, indent=2))
    _write_chunks(jobs, (design, probs, opts), parallel, progress)
    return result


def _check_resume(folder: Path, recipe: dict[str, int]) -> None:
    """Chunks already in ``folder`` must come from the same size, chunking and seeds."""
    info_path = folder / _INFO_FILE
    if info_path.exists():
        found = json.loads(info_path.read_text(encoding="utf-8")).get("recipe")
        if found is not None and found != recipe:
            raise ConfigurationError(
                f"{str(folder)!r} holds a synthetic dataset written with {found}; got "
                f"{recipe}: use another folder (or delete it) to write a different one"
            )
    elif any(folder.glob("part.*.parquet")):
        raise ConfigurationError(
            f"{str(folder)!r} holds Parquet files but no {_INFO_FILE}; use an empty folder"
        )


def _parquet_info(
    folder: Path, n_units: int, outcomes: list[tuple[str, str]], arms: list[str], n_features: int
) -> SyntheticParquet:
    order = ["control", *sorted(arms[1:])]
    return SyntheticParquet(
        path=str(folder),
        n_units=n_units,
        options={
            "treatment": "arm",
            "control": "control",
            "outcomes": dict(outcomes),
            "features": [*[f"x{i}" for i in range(n_features - 1)], "platform"],
            "propensity": "propensity",
            "unit_id": "unit_id",
        },
        truth_columns=[[f"true[{a},{o}]" for o, _ in outcomes] for a in order],
    )
