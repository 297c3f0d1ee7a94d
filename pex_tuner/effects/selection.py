"""Learner selection: the CATE learner chosen by the data (``learner="auto"``).

:func:`select_learner` fits every candidate meta-learner (:class:`CateModel`, cross-fitted on
the same folds: same ``n_folds`` and ``random_state``) and scores each on its own out-of-fold
predictions, with a criterion that needs no ground truth:

**The doubly robust pseudo-outcome loss** (``criterion="dr_loss"``). With a COMMON outcome model
``mu_k(x)`` for every candidate (the cross-fitted T-learner's per-arm regressions: the T
candidate's own out-of-fold surfaces, or one extra T fit when ``"t"`` is not a candidate) and
the logged propensity ``p_i`` of the arm each unit received,

    G[i, k, j] = mu_k(x_i) - mu_0(x_i) + 1[T_i = k] / p_i (Y_ij - mu_k(x_i))
                                       - 1[T_i = 0] / p_i (Y_ij - mu_0(x_i)),
    loss[k, j] = mean_i (G[i, k, j] - tau_hat[i, k, j])^2.

In a randomized experiment (known propensities) ``E[G | x] = tau(x)`` whatever ``mu`` is, and
``mu`` and ``tau_hat`` are both out-of-fold for unit i, so ``E[loss] = MSE(tau_hat) +
E[Var(G | x)]``: the true effect MSE plus a term that is the same for every candidate. A common
``mu`` keeps that term common (each candidate's own ``mu`` would make it differ) and gives the
criterion no reason to favour one learner; ``mu`` only changes how noisy it is.

Each (arm, outcome) loss is divided by the loss of a constant effect (the cross-fitted average
of G, i.e. "no heterogeneity"), so outcomes on different scales count alike, and the score is
the mean of these ratios over treatment arms and outcomes: below 1 means the learner beats the
constant effect. Because ``Var(G | x)`` dominates the loss, the differences between learners
are small: the table gives each learner's difference to the best with its standard error
(paired over units) and flags learners within one standard error. The pick is the lowest score
(no tie rule favouring any learner: in the benchmark the criterion must not prefer one learner
in general).

Why this criterion (``benchmarks/results/learner_selection.md``: make_synthetic with defaults
and with strong heterogeneity, n = 30,000; make_synthetic_a; IHDP; 3 seeds each, 12 runs): it
ranks the learners as their true effect MSE does (mean Spearman +0.88; +1.00 in every run of
the strongly heterogeneous and IHDP experiments) and agrees with the true hypervolume of the
OPE frontier each learner's linear policies reach (mean Spearman +0.67; the pick's
hypervolume is the best learner's or within 0.02 of it, in units of the oracle's, in 10/12
runs; mean loss 0.012, vs 0.060 for always-T, 0.042 for always-X, 0.008 for always-S). It is
not tied to one learner: it
picks S where S is right (make_synthetic, 3/3), X where X has the lowest true MSE (strong
heterogeneity, 3/3) and T once on IHDP. The alternative measured, the OPE-estimated
hypervolume of each learner's policy design on the same units, agreed less (Spearman +0.42 with
the true hypervolume, +0.38 with the true MSE; within 0.02 in 9/12 runs) and costs an OPE pass
per learner. It also reuses the candidates' out-of-fold predictions: no refit, a few
vectorized lines (milliseconds); the fits dominate the cost (18,000 units x 3 arms x 2
outcomes, 5 folds, one core: T 4.5 s, S 3.5 s, X 11 s, DR 13 s). Candidates are fitted one
after another: each LightGBM model uses one thread, and on a small shared machine running
fits in parallel processes buys little.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.checks import Interval, TypeOf, param_error, validate_params
from pex_tuner.data import ExperimentData
from pex_tuner.effects.cate import LEARNERS, CateModel
from pex_tuner.errors import ConfigurationError, InputDataError

__all__ = [
    "CRITERION",
    "LearnerSelection",
    "dr_pseudo_outcomes",
    "score_learners",
    "select_learner",
]

#: the criterion's name, as recorded in the selection and saved tuners
CRITERION = "dr_loss"
DEFAULT_CANDIDATES = ("t", "x", "dr", "s")
_NAMES = {"t": "T-learner", "x": "X-learner", "s": "S-learner", "dr": "DR-learner"}


@dataclass(frozen=True, eq=False)
class LearnerSelection:
    """The learner chosen by the data, the fitted model and the table of scores.

    Attributes:
        learner: name of the chosen learner (``"t"``, ``"x"``, ``"s"`` or ``"dr"``).
        criterion: name of the criterion (``"dr_loss"``).
        scores: one row per candidate, best first. Columns: ``learner``, ``rank`` (1 = best),
            ``score`` (mean relative DR loss over treatment arms and outcomes; lower is better,
            < 1 beats a constant effect), ``diff`` (score minus the best score), ``diff_se``
            (its standard error, paired over units; 0 for the best), ``within_1se``,
            ``score[<outcome>]`` per outcome (mean over treatment arms), ``fit_seconds``.
        model: the fitted CateModel of the chosen learner (None after :meth:`from_dict`),
            identical to ``CateModel(learner=learner, ...).fit(data)`` with the same options.
        n_units: units the candidates were fitted and scored on.
    """

    learner: str
    criterion: str
    scores: pd.DataFrame
    model: CateModel | None = field(default=None, repr=False)
    n_units: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (without the model): learner, criterion, n_units, columns, rows."""
        rows = [
            {c: _jsonable(v) for c, v in row.items()}
            for row in self.scores.to_dict(orient="records")
        ]
        return {
            "learner": self.learner,
            "criterion": self.criterion,
            "n_units": int(self.n_units),
            "columns": [str(c) for c in self.scores.columns],
            "scores": rows,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], model: CateModel | None = None) -> LearnerSelection:
        """Inverse of :meth:`to_dict`; pass the saved model back in if there is one."""
        scores = pd.DataFrame.from_records(list(d["scores"]), columns=list(d["columns"]))
        return cls(
            learner=str(d["learner"]),
            criterion=str(d["criterion"]),
            scores=scores,
            model=model,
            n_units=int(d.get("n_units", 0)),
        )

    def to_text(self) -> str:
        """The table for terminals and logs (what ``pex-tuner tune`` prints)."""
        s = self.scores
        outcome_cols = [c for c in s.columns if str(c).startswith("score[")]
        shown = pd.DataFrame(
            {
                "rank": s["rank"].astype(int),
                "learner": [_NAMES.get(v, v) for v in s["learner"]],
                "score": s["score"].map("{:.5f}".format),
                "diff": s["diff"].map("{:+.5f}".format),
                "± se": s["diff_se"].map("{:.5f}".format),
                **{c: s[c].map("{:.5f}".format) for c in outcome_cols},
                "fit s": s["fit_seconds"].map("{:.1f}".format),
            }
        )
        head = (
            f"CATE learner selection on {self.n_units:,} units; criterion {self.criterion}: "
            "doubly robust pseudo-outcome loss relative to a constant effect, mean over "
            "(arm, outcome); lower is better"
        )
        body = shown.to_string(index=False)
        ties = [
            _NAMES.get(v, v)
            for v, r, w in zip(s["learner"], s["rank"], s["within_1se"], strict=True)
            if r > 1 and w
        ]
        note = f"chosen: {_NAMES.get(self.learner, self.learner)}"
        if ties:
            note += f" (within one standard error: {', '.join(ties)})"
        return f"{head}\n{body}\n{note}"

    def __str__(self) -> str:
        return self.to_text()


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.bool_ | bool):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating | float):
        return float(v)
    return v


def dr_pseudo_outcomes(data: ExperimentData, mu: np.ndarray) -> np.ndarray:
    """Doubly robust pseudo-outcomes of the effects of every arm vs control.

    Args:
        data: the experiment (outcomes Y (n, J), arms, logged propensities (n,)).
        mu: outcome model, ndarray of shape (n_units, n_arms, n_outcomes); out-of-fold for
            the units of ``data``.

    Returns:
        G of shape (n_units, n_arms, n_outcomes), control column 0; ``E[G | x] = tau(x)`` when
        the propensities are right, whatever ``mu`` is.
    """
    n, K, J = mu.shape
    if (n, K, J) != (data.n_units, data.n_arms, data.n_outcomes):
        raise InputDataError(
            f"mu has shape {mu.shape}; expected {(data.n_units, data.n_arms, data.n_outcomes)}"
        )
    rows = np.arange(n)
    # inverse-propensity-weighted residual of each unit's own arm, shape (n, J)
    resid = (data.Y - mu[rows, data.treatment, :]) / data.propensity[:, None]
    G = mu - mu[:, :1, :]
    onehot = data.treatment[:, None] == np.arange(K)[None, :]  # (n, K)
    G += onehot[:, :, None] * resid[:, None, :]
    G -= onehot[:, :1, None] * resid[:, None, :]
    G[:, 0, :] = 0.0
    return G


def _constant_effect(G: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Cross-fitted average effect: for each unit, the mean of G over the other folds."""
    out = np.empty_like(G)
    for f in np.unique(folds):
        te = folds == f
        out[te] = G[~te].mean(axis=0)
    return out


def score_learners(
    data: ExperimentData,
    models: Mapping[str, CateModel],
    *,
    nuisance: CateModel | None = None,
    fit_seconds: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Score fitted candidates by their relative DR pseudo-outcome loss (module docstring).

    Args:
        data: the experiment every model was fitted on.
        models: learner name -> CateModel fitted on ``data`` (same folds).
        nuisance: the model whose out-of-fold ``mu`` builds the pseudo-outcomes; by default
            ``models["t"]`` (a cross-fitted T-learner).
        fit_seconds: learner name -> seconds its fit took (NaN when missing).

    Returns:
        The scores table of :class:`LearnerSelection`, best first.
    """
    if nuisance is None:
        if "t" not in models:
            raise ConfigurationError("score_learners needs nuisance= when 't' is not in models")
        nuisance = models["t"]
    G = dr_pseudo_outcomes(data, nuisance.oof_predictions_.mu)[:, 1:, :]
    base = (G - _constant_effect(G, nuisance.folds_)) ** 2
    scale = base.mean(axis=0)  # (K-1, J)
    scale = np.where(scale > 0, scale, 1.0)
    per_unit: dict[str, np.ndarray] = {}
    per_outcome: dict[str, np.ndarray] = {}
    for name, model in models.items():
        tau = model.oof_predictions_.tau[:, 1:, :]
        rel = (G - tau) ** 2 / scale  # (n, K-1, J), mean over units = relative loss
        per_unit[name] = rel.mean(axis=(1, 2))
        per_outcome[name] = rel.mean(axis=(0, 1))
    names = sorted(per_unit, key=lambda m: (per_unit[m].mean(), list(models).index(m)))
    best = per_unit[names[0]]
    n = len(best)
    rows = []
    for rank, name in enumerate(names, start=1):
        d = per_unit[name] - best
        se = float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        row: dict[str, Any] = {
            "learner": name,
            "rank": rank,
            "score": float(per_unit[name].mean()),
            "diff": float(d.mean()),
            "diff_se": se,
            "within_1se": bool(d.mean() <= se),
        }
        for j, outcome in enumerate(data.outcomes):
            row[f"score[{outcome}]"] = float(per_outcome[name][j])
        row["fit_seconds"] = float((fit_seconds or {}).get(name, np.nan))
        rows.append(row)
    return pd.DataFrame(rows)


def _fit_one_candidate(
    make: Any, name: str, data: ExperimentData, quiet: bool = False
) -> tuple[CateModel, float]:
    t0 = time.perf_counter()
    model = make(name)
    shown = model.progress
    if quiet:  # no progress bars from worker processes
        model.progress = False
    model.fit(data)
    model.progress = shown
    return model, time.perf_counter() - t0


def _fit_candidates(
    names: Sequence[str], make: Any, data: ExperimentData, n_jobs: int
) -> tuple[dict[str, CateModel], dict[str, float]]:
    """Fit every candidate (``n_jobs`` at once, see ``select_learner``); returns the models
    and each fit's seconds."""
    if n_jobs == 1:
        fitted = [_fit_one_candidate(make, name, data) for name in names]
    else:
        from joblib import Parallel, delayed

        fitted = Parallel(n_jobs=min(n_jobs, len(names)), backend="loky")(
            delayed(_fit_one_candidate)(make, name, data, True) for name in names
        )
    models = {name: m for name, (m, _) in zip(names, fitted, strict=True)}
    seconds = {name: s for name, (_, s) in zip(names, fitted, strict=True)}
    return models, seconds


def _check_candidates(candidates: Any) -> tuple[str, ...]:
    """Validated candidate names, in the given order."""
    expected = f"a non-empty sequence of learner names from {list(LEARNERS)}"
    if isinstance(candidates, str) or not isinstance(candidates, Sequence) or not candidates:
        raise param_error("candidates", expected, candidates)
    names = list(candidates)
    unknown = [c for c in names if not (isinstance(c, str) and c in LEARNERS)]
    if unknown:
        raise ConfigurationError(
            f"The 'candidates' parameter has unknown learner(s) {unknown}; allowed learners "
            f"are {list(LEARNERS)}."
        )
    dupes = sorted({c for c in names if names.count(c) > 1}, key=names.index)
    if dupes:
        raise ConfigurationError(
            f"The 'candidates' parameter lists {dupes} more than once; give each learner once."
        )
    return tuple(names)


def select_learner(
    data: ExperimentData,
    *,
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    base_learner: Any = None,
    n_folds: int = 5,
    random_state: int | None = 0,
    progress: bool | None = None,
    n_jobs: int = 1,
) -> LearnerSelection:
    """Fit every candidate CATE learner and keep the one with the lowest DR loss.

    Args:
        data: the logged experiment to fit on (usually the tuner's training units).
        candidates: learner names, from ``"t"``, ``"x"``, ``"dr"``, ``"s"``.
        base_learner: any scikit-learn regressor for every candidate; LightGBM by default.
        n_folds: cross-fitting folds (>= 2), shared by every candidate.
        random_state: seed of the folds and of the default base learner.
        progress: progress bars of the fits (None: only in terminals / notebooks).
        n_jobs: candidates fitted at once, in separate processes (joblib's loky), with the
            same results. Each fit is single-threaded (see ``default_base_learner``), so on a
            machine with idle cores the selection takes about the time of the slowest
            candidate; on a busy one it does not help (measured on 2 shared cores: 92 s with
            2 processes vs 66 s one after the other), hence the default 1.

    Returns:
        LearnerSelection: ``model`` is the chosen learner's CateModel, exactly what
        ``CateModel(learner=..., base_learner=..., n_folds=..., random_state=...).fit(data)``
        gives; ``scores`` the table of every candidate.

    Raises:
        ConfigurationError: unknown, duplicate or no candidates, bad ``n_folds`` /
            ``random_state`` / ``progress`` / ``base_learner`` (before any fit).
        InputDataError: data that CateModel cannot fit (before any fit).
    """
    names = _check_candidates(candidates)
    validate_params(
        {"n_folds": n_folds, "random_state": random_state, "progress": progress, "n_jobs": n_jobs},
        {
            "n_jobs": [Interval(int, 1, None)],
            "n_folds": [Interval(int, 2, None)],
            "random_state": [Interval(int, 0, None), None],
            "progress": [TypeOf(bool, "a bool"), None],
        },
    )

    def make(learner: str) -> CateModel:
        return CateModel(
            learner=learner,
            base_learner=base_learner,
            n_folds=n_folds,
            random_state=random_state,
            progress=progress,
        )

    first = make(names[0])
    first._check_params(data)
    first._check_missing_support(data)

    models, seconds = _fit_candidates(names, make, data, n_jobs)
    nuisance = models.get("t")
    if nuisance is None:  # the common outcome model: one cross-fitted T-learner
        nuisance = make("t").fit(data)
    scores = score_learners(data, models, nuisance=nuisance, fit_seconds=seconds)
    best = str(scores["learner"].iloc[0])
    return LearnerSelection(
        learner=best,
        criterion=CRITERION,
        scores=scores,
        model=models[best],
        n_units=data.n_units,
    )
