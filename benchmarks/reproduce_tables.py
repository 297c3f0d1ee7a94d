"""Reproduce Table 1 and Table 2 of "Interpretable Personalized Experimentation" (Wu, Tan et al.,
KDD 2022) with pex_tuner, over several seeded train/test splits (mean +- std).

Table 2: normalized test-set regret of policies
-----------------------------------------------
Datasets: IHDP (response surface B, econml's draw with seed 0, fixed), Synthetic A (R2P / Athey
& Imbens design 1, n = 1300, a new draw per split seed) and Hillstrom (64,000 units, 3 arms,
nearest-neighbour potential outcomes, fixed).

Per split seed ``s``: ``ExperimentData.split_indices(test_size=0.4, validation_size=0,
random_state=s)`` holds out 40% as the test split. The other 60% go to ``learn_policy`` (with
``random_state=s``), which splits them 70 / 30 into train (42% of all units) and validation (18%),
as in the paper's 40 / 18 / 42 protocol. One CATE model (``fit_effects``: econml T-learner,
LightGBM base learner, cross-fitted, ``n_folds`` 5; 2 on Hillstrom) is fitted on train by the
first ``learn_policy`` call and handed to the others (``effects=``), so every method sees the
same model and split. Policies (``--depth`` 2 and leaves of >= 5% of train unless said otherwise):

- assign-all: every unit gets the arm with the best estimated average effect on train (the
  T-learner's out-of-fold ATE; control counts, with effect 0): "launch the winner".
- BlackBox: ``argmax_k sum_j w_j tau_hat_kj(x)`` of the T-learner (GBDT) on the test units.
- GreedyTreeSearch-HTE, Distill-Policy, No-HTE Greedy, No-HTE Iterative, GUIDE-OPE,
  GUIDE-ExploreExploit: ``learn_policy`` methods ``greedy-tree``, ``distill``,
  ``no-hte-greedy``, ``no-hte-iterative``, ``guide-ope``, ``guide-explore-exploit`` (library
  defaults otherwise: No-HTE significance level 0.05; GUIDE combines greedy-tree and
  no-hte-greedy with one split learned on validation).
- DRPolicyTree (extra peer, not in the paper): ``econml.policy.DRPolicyTree`` fitted on train
  to the weighted utility ``sum_j w_j Y_j``; ``max_depth`` = ``--depth``, ``min_samples_leaf`` =
  5% of train, ``honest=True`` (econml's default), ``cv=2``, LightGBM regression model (same
  settings as the library's default base learner), propensity = arm shares (randomized data) or
  a logistic regression (IHDP, whose treated group is not random).

Regret (test split, true potential outcomes ``mu[i, k, j]``): ``V(oracle) - V(policy)`` with
``V(pi) = mean_i sum_j w_j mu[i, pi(x_i), j]`` and the oracle ``argmax_k sum_j w_j mu[i, k, j]``
(``ExperimentWithTruth.regret``). Outcome weights ``w``: the single outcome (weight 1) on IHDP
and Synthetic A; on Hillstrom (visit, conversion, spend) ``--hillstrom-weights`` (default
``1,0,0``: visit only; I could not confirm which combination the paper used). Normalized regret
= regret / regret(BlackBox) of the same split; then mean +- std (ddof 1) over splits. A split
whose BlackBox regret is below 1e-12 has no normalized value (counted and reported).

Table 1: explanations of HTE models
-----------------------------------
Datasets: Synthetic A and COVID (R2P's generators, n = 1300 per split seed; R2P's sizes: 300
train units drawn at random with seed ``s``, the other 1000 are test). All effects below are
treated-minus-control on the single outcome; ``tau`` is the true (noise-free) effect
``mu_1(x) - mu_0(x)`` of the test units.

- PEHE = ``sqrt(mean_test (tau_hat - tau)^2)``.
- Segments: a partition of the test units; ``n_s`` units in segment s, ``n`` in all.
  Between-segment variance ``sum_s (n_s / n) (mean_s tau - mean tau)^2``; within-segment
  variance ``sum_s (n_s / n) var_s(tau)`` (population variances). The two add up to the
  variance of ``tau`` over the test units. A good explanation has a large between and a small
  within variance.

Methods (every tree has ``max_depth`` 3; leaves of >= 20 of the 300 training units):

- Distill-HTE: ``DistillHTE(max_depth=3, min_units_per_arm=10, honest=True)`` given an unfitted
  default T-learner (LightGBM, cross-fitted on the structure half). Segments: its leaves
  (``predict_segment``); ``tau_hat``: the honest segment estimates (``predict_effects``).
  ``min_units_per_arm`` is lowered from the default 30 because the estimation half has only
  about 75 units per arm (so leaves of the structure tree hold >= 40 of its ~150 units). Also
  reported (extra rows): the same tree distilled, still honestly, from the out-of-fold
  predictions of the T-learner (GBDT) below, fitted on all 300 training units (the model Virtual
  Twins (GBDT) uses; its estimation half then influenced the CATE model but not the tree or the
  estimates' selection); and ``honest=False`` (model, structure and estimates on all 300 units).
- Virtual Twins (RF / GBDT): a T-learner with RandomForestRegressor (200 trees, leaves >= 5) or
  the default LightGBM base learner, cross-fitted on train (``fit_effects``, 5 folds); a
  ``DecisionTreeRegressor`` is fitted to the out-of-fold ``tau_hat`` of the training units.
  Segments: the leaves of that tree; ``tau_hat``: the tree's prediction (leaf mean of the
  T-learner's effects).
- T-learner (DT): one ``DecisionTreeRegressor`` per arm on its training units (no cross-fitting);
  ``tau_hat = mu_hat_1 - mu_hat_0``. Segments: the cells of the two trees' leaves intersected,
  i.e. units share a segment when they fall in the same treated-arm leaf and the same
  control-arm leaf (up to 64 segments; ``tau_hat`` is constant on each).
- T-learner (GBDT): the LightGBM T-learner above (fold-averaged predictions on test). It has
  no segments: between / within variances are N/A.

Paper values: parsed at run time from ``--paper-tables`` (default
``../shared/data/PAPER_TABLES.md``, the tables as published); each of our rows is marked inside
or outside the paper's mean +- 2 std, in the paper's normalization (Table 2: / BlackBox; Table
1: PEHE ratios between methods, R2P being unavailable). Table 2 is run under every protocol
choice the paper leaves open (``T2_VARIANTS``: IHDP forms, depth, Hillstrom utility); the
CEVAE-format IHDP form needs ``--ihdp-csv`` (no PyPI package ships that file).

Usage:
    python benchmarks/reproduce_tables.py [--splits 10]
        [--datasets synthetic_a,covid,ihdp,hillstrom] [--ihdp-csv ihdp_npci_1.csv]
        [--paper-tables ../shared/data/PAPER_TABLES.md] [--hillstrom-weights 1,0,0]
        [--state STATE.json] [--render-only] [--out benchmarks/results/paper_tables.md]

The markdown is rewritten after every dataset, so partial results survive an interruption.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pex_tuner.data import ExperimentData
from pex_tuner.datasets import (
    ExperimentWithTruth,
    load_hillstrom,
    load_ihdp,
    make_covid,
    make_synthetic_a,
)
from pex_tuner.effects import default_base_learner, fit_effects
from pex_tuner.explain import DistillHTE
from pex_tuner.workflows.learn_policy import learn_policy

ALL_DATASETS = ("synthetic_a", "covid", "ihdp", "hillstrom")
TABLE1_DATASETS = ("synthetic_a", "covid")
LABELS = {
    "ihdp": "IHDP",
    "synthetic_a": "Synthetic A",
    "hillstrom": "Hillstrom",
    "covid": "COVID",
}
PAPER_DATA = {"ihdp": "IHDP", "synthetic_a": "Synthetic A", "hillstrom": "Email Marketing"}

# Table 2 runs: (variant key, dataset loaded, depth, weights label, description). A variant is
# one protocol choice where the paper is silent; the final run reports every one of them.
T2_VARIANTS = (
    ("ihdp", "ihdp", 2, "y", "IHDP, econml surface B (seed 0), depth 2"),
    ("ihdp-d3", "ihdp", 3, "y", "IHDP, econml surface B (seed 0), depth 3"),
    (
        "ihdp_cevae",
        "ihdp_cevae",
        2,
        "y",
        "IHDP, CEVAE replication (mu0/mu1), R2P's outcomes mu_t + N(0, 0.1^2), depth 2",
    ),
    (
        "ihdp_cevae-d3",
        "ihdp_cevae",
        3,
        "y",
        "IHDP, CEVAE replication (mu0/mu1), R2P's outcomes mu_t + N(0, 0.1^2), depth 3",
    ),
    (
        "ihdp_cevae_yf",
        "ihdp_cevae_yf",
        2,
        "y",
        "IHDP, CEVAE replication (mu0/mu1), the file's y_factual (noise sd 1), depth 2",
    ),
    ("synthetic_a", "synthetic_a", 2, "y", "Synthetic A (n = 1300 per seed), depth 2"),
    ("synthetic_a-d3", "synthetic_a", 3, "y", "Synthetic A (n = 1300 per seed), depth 3"),
    ("hillstrom", "hillstrom", 2, "visit", "Hillstrom, utility = visit (1, 0, 0), depth 2"),
    (
        "hillstrom_std",
        "hillstrom_std",
        2,
        "std",
        "Hillstrom, utility = equal weights on standardized visit, conversion, spend, depth 2",
    ),
)
NA_PAPER = "no paper row"

# Table 2 rows: (key, label); learn_policy methods are keyed by their method name.
T2_ROWS = (
    ("all-0", "assign all to arm 0 (control)"),
    ("all-1", "assign all to arm 1"),
    ("all-2", "assign all to arm 2"),
    ("assign-all", "assign-all (best ATE arm on train, extra)"),
    ("blackbox", "BlackBox (T-learner, GBDT)"),
    ("greedy-tree", "GreedyTreeSearch-HTE"),
    ("distill", "Distill-Policy"),
    ("no-hte-greedy", "No-HTE Greedy"),
    ("no-hte-iterative", "No-HTE Iterative"),
    ("guide-ope-pd", "GUIDE-OPE (greedy + distill inputs, as the paper)"),
    ("guide-ee-pd", "GUIDE-ExploreExploit (greedy + distill inputs, as the paper)"),
    ("guide-ope", "GUIDE-OPE (library: greedy + No-HTE inputs)"),
    ("guide-explore-exploit", "GUIDE-ExploreExploit (library: greedy + No-HTE inputs)"),
    ("drpolicytree", "econml DRPolicyTree (extra peer)"),
)
# our row -> the paper's row names to try, in order
T2_PAPER_ROWS = {
    "all-0": ("Assign all to treatment 0",),
    "all-1": ("Assign all to treatment 1",),
    "all-2": ("Assign all to treatment 2",),
    "blackbox": ("BlackBox",),
    "greedy-tree": ("GreedyTreeSearch-HTE",),
    "distill": ("Distill-Policy",),
    "no-hte-greedy": ("No-HTE (Greedy and Iterative)*", "No-HTE (Greedy)"),
    "no-hte-iterative": ("No-HTE (Greedy and Iterative)*", "No-HTE (Iterative)"),
    "guide-ope-pd": ("GUIDE-OPE (guide depth 1)", "GUIDE (UniformExplore and OPE)"),
    "guide-ee-pd": ("GUIDE-UniformExplore (guide depth 1)", "GUIDE (UniformExplore and OPE)"),
    "guide-ope": ("GUIDE-OPE (guide depth 1)", "GUIDE (UniformExplore and OPE)"),
    "guide-explore-exploit": (
        "GUIDE-UniformExplore (guide depth 1)",
        "GUIDE (UniformExplore and OPE)",
    ),
}
LEARN_METHODS = (
    "greedy-tree",
    "distill",
    "no-hte-greedy",
    "no-hte-iterative",
    "guide-ope",
    "guide-explore-exploit",
)
T1_ROWS = (
    ("distill-hte", "Distill-HTE (honest)"),
    ("distill-hte-oof", "Distill-HTE (honest, of T-learner GBDT, extra)"),
    ("distill-hte-nh", "Distill-HTE (honest=False, extra)"),
    ("vt-rf", "Virtual Twins (RF)"),
    ("vt-gbdt", "Virtual Twins (GBDT)"),
    ("t-gbdt", "T-learner (GBDT)"),
    ("t-dt", "T-learner (DT)"),
)
T1_DEPTH = 3
T1_LEAF = 20
T1_TRAIN = 300


def log(msg: str) -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------- data
CEVAE_HOWTO = (
    "the CEVAE-format IHDP replications (ihdp_npci_1.csv ... ihdp_npci_10.csv: no header; "
    "treatment, y_factual, y_cfactual, mu0, mu1, x1..x25) ship in no PyPI package we checked "
    "(causalml wheel and sdist, dowhy, catenets, causallib, causaltune, JustCause, "
    "naturalexperiments, causaldata, ylearn: all download them from GitHub at run time); get "
    "datasets/IHDP/csv/ihdp_npci_1.csv from the CEVAE authors' repository (AMLab-Amsterdam/CEVAE) "
    "and pass its path as --ihdp-csv"
)


def load_ihdp_cevae(path: Path, seed: int, *, outcome: str) -> ExperimentWithTruth:
    """One CEVAE-format IHDP replication (747 units, 25 covariates) with mu0 / mu1 as truth.

    ``outcome="r2p"``: R2P's protocol, observed Y(t) = mu_t + N(0, 0.1^2) drawn with ``seed``;
    ``outcome="factual"``: the file's y_factual (Hill's noise, sd 1).
    """
    import pandas as pd

    raw = np.loadtxt(path, delimiter=",")
    if raw.ndim != 2 or raw.shape[1] != 30:
        raise SystemExit(f"{path}: expected 30 columns (CEVAE format), got shape {raw.shape}")
    t = raw[:, 0].astype(np.int64)
    mu = raw[:, 3:5]
    if outcome == "r2p":
        noise = np.random.default_rng(seed).normal(0.0, 0.1, size=mu.shape)
        y = np.where(t == 1, mu[:, 1] + noise[:, 1], mu[:, 0] + noise[:, 0])
    else:
        y = raw[:, 1]
    frame = pd.DataFrame(raw[:, 5:], columns=[f"x{i}" for i in range(1, 26)])
    frame["arm"] = np.where(t == 1, "treated", "control").astype(object)
    frame["y"] = y
    data = ExperimentData.from_frame(
        frame, treatment="arm", control="control", outcomes={"y": "max"}
    )
    return ExperimentWithTruth(data=data, potential_outcomes=mu[:, :, None], name="ihdp_cevae")


def hillstrom_std_weights() -> list[float]:
    """Equal weights on standardized outcomes: 1 / sd of each of (visit, conversion, spend)."""
    sd = load_hillstrom().data.Y.std(axis=0)
    return [float(1.0 / v) for v in sd]


def load_table2(name: str, seed: int, args: argparse.Namespace) -> ExperimentWithTruth:
    """The experiment behind Table 2 for split ``seed`` (fixed data except Synthetic A and
    the R2P-noise IHDP form, whose noise is redrawn per seed)."""
    if name == "ihdp":
        return load_ihdp("B", random_state=0)
    if name == "ihdp_cevae":
        return load_ihdp_cevae(args.ihdp_csv, seed, outcome="r2p")
    if name == "ihdp_cevae_yf":
        return load_ihdp_cevae(args.ihdp_csv, seed, outcome="factual")
    if name == "synthetic_a":
        return make_synthetic_a(1300, random_state=seed)
    if name in ("hillstrom", "hillstrom_std"):
        return load_hillstrom()
    raise ValueError(name)


def load_table1(name: str, seed: int) -> ExperimentWithTruth:
    if name == "synthetic_a":
        return make_synthetic_a(1300, random_state=seed)
    if name == "covid":
        return make_covid(1300, random_state=seed)
    raise ValueError(name)


# ----------------------------------------------------------------------------- Table 2
def drpolicytree_assign(
    train: ExperimentData,
    test: ExperimentData,
    w: np.ndarray,
    *,
    depth: int,
    randomized: bool,
    seed: int,
) -> np.ndarray:
    from econml.policy import DRPolicyTree
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    y = train.Y @ w
    propensity = (
        DummyClassifier(strategy="prior") if randomized else LogisticRegression(max_iter=2000)
    )
    tree = DRPolicyTree(
        model_regression=default_base_learner(seed),
        model_propensity=propensity,
        max_depth=depth,
        min_samples_leaf=max(5, math.ceil(0.05 * train.n_units)),
        honest=True,
        cv=2,
        random_state=seed,
    )
    tree.fit(y, train.treatment, X=train.X)
    return np.asarray(tree.predict(test.X)).astype(np.int64)


def paper_guides(
    nontest: ExperimentData,
    results: dict[str, Any],
    model: Any,
    w: np.ndarray,
    seed: int,
) -> dict[str, Any]:
    """The paper's GUIDE: its guidance split chooses between GreedyTreeSearch-HTE and
    Distill-Policy (the library's learn_policy GUIDE combines greedy-tree and No-HTE Greedy)."""
    from pex_tuner.policies import GuidanceTreeLearner

    val = nontest.subset(results["greedy-tree"].indices["validation"])
    pred_val = model.predict(val, out_of_fold="never")
    inputs = [results["greedy-tree"].policy, results["distill"].policy]
    out = {}
    for key, method in (("guide-ope-pd", "ope"), ("guide-ee-pd", "explore_exploit")):
        guide = GuidanceTreeLearner(
            policies=inputs, method=method, outcome_weights=w, random_state=seed
        )
        out[key] = guide.fit(val, pred_val).policy_
    return out


def table2_split(
    name: str, seed: int, args: argparse.Namespace, *, depth: int, weights: np.ndarray
) -> dict[str, float]:
    """Absolute test regret of every Table 2 method for one split seed."""
    n_folds = args.hillstrom_folds if name.startswith("hillstrom") else 5
    exp = load_table2(name, seed, args)
    data = exp.data
    ind = data.split_indices(test_size=0.4, validation_size=0.0, random_state=seed)
    nontest = data.subset(ind["train"])
    truth_test = exp.subset(ind["test"])
    test = truth_test.data
    w = np.asarray(weights, dtype=float)

    regrets: dict[str, float] = {}
    timings: dict[str, float] = {}
    model = None
    results: dict[str, Any] = {}
    common = {"outcome_weights": w, "max_depth": depth, "random_state": seed}
    for method in LEARN_METHODS:
        t0 = time.perf_counter()
        res = learn_policy(nontest, method, effects=model, n_folds=n_folds, **common)
        timings[method] = time.perf_counter() - t0
        model = res.model if model is None else model
        results[method] = res
        regrets[method] = truth_test.regret(res.policy.assign_data(test), w)
    assert model is not None
    train = nontest.subset(results["greedy-tree"].indices["train"])
    for key, policy in paper_guides(nontest, results, model, w, seed).items():
        regrets[key] = truth_test.regret(policy.assign_data(test), w)

    # BlackBox: argmax of the T-learner's predicted utility lift on the test units.
    tau_test = model.predict(test, out_of_fold="never").tau  # (n, K, J), control 0
    regrets["blackbox"] = truth_test.regret(np.argmax(tau_test @ w, axis=1), w)
    # assign-all: the best arm by the out-of-fold ATE on train; and every arm in turn.
    best = int(np.argmax(model.predict(train).ate @ w))
    regrets["assign-all"] = truth_test.regret(np.full(test.n_units, best), w)
    for k in range(data.n_arms):
        regrets[f"all-{k}"] = truth_test.regret(np.full(test.n_units, k), w)

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        randomized = not name.startswith("ihdp")
        dr = drpolicytree_assign(train, test, w, depth=depth, randomized=randomized, seed=seed)
    timings["drpolicytree"] = time.perf_counter() - t0
    regrets["drpolicytree"] = truth_test.regret(dr, w)
    regrets["_oracle_value"] = float(truth_test.policy_value(truth_test.oracle_assignment(w)) @ w)
    regrets["_seconds"] = sum(timings.values())
    return regrets


# ----------------------------------------------------------------------------- Table 1
def segment_variances(tau: np.ndarray, segments: np.ndarray) -> tuple[float, float]:
    """(between, within) variance of ``tau`` over the partition given by ``segments``."""
    n = len(tau)
    mean = tau.mean()
    between = within = 0.0
    for s in np.unique(segments):
        t = tau[segments == s]
        between += len(t) / n * (t.mean() - mean) ** 2
        within += len(t) / n * t.var()
    return float(between), float(within)


def _leaf_ids(tree: Any, X: np.ndarray) -> np.ndarray:
    return np.asarray(tree.apply(X), dtype=np.int64)


def table1_split(name: str, seed: int) -> dict[str, Any]:
    """{method: (PEHE, between, within, n_segments)} for one split seed (NaN where not
    defined), plus ``_var_tau`` (variance of the true effect over the test units)."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.tree import DecisionTreeRegressor

    exp = load_table1(name, seed)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(exp.data.n_units)
    tr_idx, te_idx = np.sort(perm[:T1_TRAIN]), np.sort(perm[T1_TRAIN:])
    train, truth_test = exp.data.subset(tr_idx), exp.subset(te_idx)
    test = truth_test.data
    tau = truth_test.true_effects[:, 1, 0]
    out: dict[str, Any] = {"_var_tau": float(tau.var())}

    def pehe(tau_hat: np.ndarray) -> float:
        return float(np.sqrt(np.mean((tau_hat - tau) ** 2)))

    def record(key: str, tau_hat: np.ndarray, segments: np.ndarray | None) -> None:
        if segments is None:
            out[key] = (pehe(tau_hat), math.nan, math.nan, math.nan)
        else:
            n_seg = float(len(np.unique(segments)))
            out[key] = (pehe(tau_hat), *segment_variances(tau, segments), n_seg)

    from pex_tuner.effects import CateModel

    for key, honest in (("distill-hte", True), ("distill-hte-nh", False)):
        dh = DistillHTE(
            max_depth=T1_DEPTH, min_units_per_arm=10, honest=honest, random_state=seed
        ).fit(train, model=CateModel(n_folds=5, random_state=seed, progress=False))
        record(
            key,
            dh.predict_effects(test)[:, 1, 0],
            dh.predict_segment(test).iloc[:, 0].to_numpy(),
        )

    gbdt = fit_effects(train, n_folds=5, random_state=seed, progress=False)
    rf = fit_effects(
        train,
        base_learner=RandomForestRegressor(
            n_estimators=200, min_samples_leaf=5, random_state=seed, n_jobs=1
        ),
        n_folds=5,
        random_state=seed,
        progress=False,
    )
    dh = DistillHTE(max_depth=T1_DEPTH, min_units_per_arm=10, random_state=seed).fit(
        train, predictions=gbdt.predict(train)
    )
    record(
        "distill-hte-oof",
        dh.predict_effects(test)[:, 1, 0],
        dh.predict_segment(test).iloc[:, 0].to_numpy(),
    )
    record("t-gbdt", gbdt.predict(test, out_of_fold="never").tau[:, 1, 0], None)
    for key, model in (("vt-rf", rf), ("vt-gbdt", gbdt)):
        tree = DecisionTreeRegressor(
            max_depth=T1_DEPTH, min_samples_leaf=T1_LEAF, random_state=seed
        ).fit(train.X, model.predict(train).tau[:, 1, 0])
        record(key, tree.predict(test.X), _leaf_ids(tree, test.X))

    trees = []
    for k in (0, 1):
        rows = train.treatment == k
        trees.append(
            DecisionTreeRegressor(
                max_depth=T1_DEPTH, min_samples_leaf=T1_LEAF, random_state=seed
            ).fit(train.X[rows], train.Y[rows, 0])
        )
    tau_dt = trees[1].predict(test.X) - trees[0].predict(test.X)
    cells = _leaf_ids(trees[1], test.X) * 10_000 + _leaf_ids(trees[0], test.X)
    record("t-dt", tau_dt, cells)
    return out


# ----------------------------------------------------------------------------- paper
def _paper_value(cell: str) -> tuple[float, float] | None:
    """``"0.94 ± 0.29"`` -> (0.94, 0.29); a dash or anything else -> None."""
    parts = cell.replace("+-", "±").split("±")
    try:
        return float(parts[0]), float(parts[1]) if len(parts) > 1 else 0.0
    except ValueError:
        return None


def _md_tables(section: str) -> list[list[list[str]]]:
    """The markdown tables of a text section: a list of tables, each a list of rows of cells
    (header row first, separator dropped)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*section.splitlines(), ""]:
        if line.strip().startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def parse_paper_tables(path: Path) -> dict[str, Any] | None:
    """Tables 1-3 of PAPER_TABLES.md: ``{"t1": {(data, method): {column: (mean, sd) or
    None}}, "t2": {(data, method): (mean, sd)}, "t3": [rows of cells], "t3_header": [...]}``;
    None when the file is absent."""
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8")
    out: dict[str, Any] = {"t1": {}, "t2": {}, "t3": [], "t3_header": []}
    for chunk in text.split("\n## ")[1:]:
        title = chunk.splitlines()[0]
        tables = _md_tables(chunk)
        if not tables:
            continue
        header, *rows = tables[0]
        if title.startswith("Table 1"):
            for r in rows:
                out["t1"][(r[0], r[1])] = {
                    h: _paper_value(c) for h, c in zip(header[2:], r[2:], strict=False)
                }
        elif title.startswith("Table 2"):
            for r in rows:
                v = _paper_value(r[2])
                if v is not None:
                    out["t2"][(r[0], r[1])] = v
        elif title.startswith("Table 3"):
            out["t3_header"], out["t3"] = header, rows
    return out


def band_mark(ours: float, paper: tuple[float, float] | None) -> str:
    """``in`` when ``ours`` lies within the paper's mean +- 2 sd, else ``OUT``."""
    if paper is None or not np.isfinite(ours):
        return "–"
    m, sd = paper
    return "in" if abs(ours - m) <= 2 * sd + 1e-12 else "**OUT**"


def paper_t2(paper: dict[str, Any] | None, data: str, key: str) -> tuple[str, tuple] | None:
    """(paper row name, (mean, sd)) for our row ``key`` on the paper's dataset ``data``."""
    if paper is None:
        return None
    for name in T2_PAPER_ROWS.get(key, ()):
        if (data, name) in paper["t2"]:
            return name, paper["t2"][(data, name)]
    return None


# Table 1 ratios: (label, numerator, denominator, paper numerator, paper denominator)
T1_RATIOS = (
    ("Distill-HTE / T-learner GBDT", "distill-hte", "t-gbdt", "Distill-HTE", "T-Learner GBDT"),
    (
        "Distill-HTE (of T-learner GBDT, extra) / T-learner GBDT",
        "distill-hte-oof",
        "t-gbdt",
        "Distill-HTE",
        "T-Learner GBDT",
    ),
    (
        "Distill-HTE (honest=False, extra) / T-learner GBDT",
        "distill-hte-nh",
        "t-gbdt",
        "Distill-HTE",
        "T-Learner GBDT",
    ),
    ("T-learner DT / T-learner GBDT", "t-dt", "t-gbdt", "T-Learner DT", "T-Learner GBDT"),
    ("VT-RF / VT-GBDT", "vt-rf", "vt-gbdt", "Virtual Twins RF", "Virtual Twins GBDT"),
)


def paper_ratio(
    paper: dict[str, Any] | None, data: str, num: str, den: str
) -> tuple[float, float] | None:
    """Ratio of the paper's mean PEHEs (R2P's normalization cancels) with a delta-method sd
    ``r * sqrt((s_a / a)^2 + (s_b / b)^2)`` (the two treated as independent)."""
    if paper is None:
        return None
    a = paper["t1"].get((data, num), {}).get("PEHE")
    b = paper["t1"].get((data, den), {}).get("PEHE")
    if not a or not b:
        return None
    r = a[0] / b[0]
    return r, r * math.sqrt((a[1] / a[0]) ** 2 + (b[1] / b[0]) ** 2)


# ----------------------------------------------------------------------------- output
def mean_std(values: list[float], digits: int = 3) -> str:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return "N/A"
    sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return f"{v.mean():.{digits}f} ± {sd:.{digits}f}"


def _finite_mean(values: list[float]) -> float:
    v = [x for x in values if np.isfinite(x)]
    return float(np.mean(v)) if v else math.nan


def render_t2_variant(
    variant: str, rows: list[dict[str, float]], paper: dict[str, Any] | None, outside: list
) -> list[str]:
    _key, ds, _depth, _, desc = next(v for v in T2_VARIANTS if v[0] == variant)
    data = PAPER_DATA[ds.split("_cevae")[0].replace("_std", "")]
    lines = [
        f"### {desc}",
        "",
        "| Method | ours: mean ± std of per-split ratios | ours: median | ours: ratio of "
        f"means | paper ({data}) | band | ours: absolute regret |",
        "|---|---|---|---|---|---|---|",
    ]
    bb = np.mean([r["blackbox"] for r in rows])
    for k, label in T2_ROWS:
        if k not in rows[0]:
            continue
        norm = [r[k] / r["blackbox"] if r["blackbox"] > 1e-12 else math.nan for r in rows]
        ratio = np.mean([r[k] for r in rows]) / bb if bb > 1e-12 else math.nan
        pr = paper_t2(paper, data, k)
        mark = band_mark(_finite_mean(norm), pr[1] if pr else None)
        pcell = f"{pr[1][0]:.2f} ± {pr[1][1]:.2f} ({pr[0]})" if pr else NA_PAPER
        if "OUT" in mark:
            outside.append((f"Table 2, {desc}", label, _finite_mean(norm), pr))
        lines.append(
            f"| {label} | {mean_std(norm)} | {np.nanmedian(norm):.3f} | {ratio:.2f} | "
            f"{pcell} | {mark} | "
            f"{mean_std([r[k] for r in rows], 4)} |"
        )
    bad = sum(r["blackbox"] <= 1e-12 for r in rows)
    lines += [
        "",
        f"Oracle value {mean_std([r['_oracle_value'] for r in rows], 4)}; {len(rows)} splits"
        f" ({bad} with BlackBox regret ≈ 0, excluded from the per-split ratios); "
        f"{mean_std([r['_seconds'] for r in rows], 1)} s per split.",
        "",
    ]
    return lines


def render_t1(
    d: str, rows: list[dict[str, Any]], paper: dict[str, Any] | None, outside: list
) -> list[str]:
    var_tau = mean_std([r["_var_tau"] for r in rows], 4)
    lines = [
        f"### {LABELS[d]} (Var(tau) on test: {var_tau})",
        "",
        "PEHE ratios between methods (the paper's columns are normalized by R2P, which cancels "
        "in a ratio of means; the paper's ratio carries a delta-method sd, band = ±2 sd):",
        "",
        "| Ratio of PEHE | ours: mean ± std of per-split ratios | ours: ratio of means | "
        "paper (ratio of means ± sd) | band |",
        "|---|---|---|---|---|",
    ]
    for label, num, den, pnum, pden in T1_RATIOS:
        per = [r[num][0] / r[den][0] for r in rows]
        rom = np.mean([r[num][0] for r in rows]) / np.mean([r[den][0] for r in rows])
        pr = paper_ratio(paper, LABELS[d], pnum, pden)
        mark = band_mark(float(rom), pr)
        if "OUT" in mark:
            outside.append((f"Table 1, {LABELS[d]}", label, float(rom), ("ratio", pr)))
        pcell = f"{pr[0]:.2f} ± {pr[1]:.2f}" if pr else "N/A"
        lines.append(f"| {label} | {mean_std(per, 2)} | {rom:.2f} | {pcell} | {mark} |")
    lines += [
        "",
        "Absolute values (ours; the paper's are in units of R2P and cannot be set beside them):",
        "",
        "| Method | PEHE | between | within | test segments |",
        "|---|---|---|---|---|",
    ]
    for key, label in T1_ROWS:
        vals = [r[key] for r in rows]
        lines.append(
            f"| {label} | {mean_std([v[0] for v in vals], 4)} | "
            f"{mean_std([v[1] for v in vals], 4)} | {mean_std([v[2] for v in vals], 4)} | "
            f"{mean_std([v[3] for v in vals], 1)} |"
        )
    return [*lines, ""]


def render_t3(paper: dict[str, Any] | None) -> list[str]:
    lines = ["## Table 3 (UX-layout use case at Meta)", ""]
    if paper is None or not paper["t3"]:
        return [*lines, "Paper tables not available.", ""]
    lines += [
        "Not reproduced: the methods exist here (X-learner CATE models, Distill-Policy, No-HTE "
        "Greedy, assign-all baselines, DR OPE with intervals) but the data is Meta's internal "
        "experiment, which is not public. The paper's values, as parsed:",
        "",
        "| " + " | ".join(paper["t3_header"]) + " |",
        "|" + "---|" * len(paper["t3_header"]),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in paper["t3"]]
    return [*lines, ""]


def render(
    state: dict[str, Any], args: argparse.Namespace, elapsed: float, done: bool, cmd: str
) -> str:
    paper_path = Path(args.paper_tables)
    paper = parse_paper_tables(paper_path)
    outside: list[tuple[str, str, float, Any]] = []
    lines = [
        "# Interpretable Personalized Experimentation (KDD 2022): Tables 1-3, ours vs paper",
        "",
        f"Command: `{cmd}`",
        "",
        f"Generated by `benchmarks/reproduce_tables.py` ({'complete' if done else 'PARTIAL'}"
        f" run); {args.splits} split(s); wall time {elapsed / 60:.1f} min; Python "
        f"{platform.python_version()}, {platform.machine()}.",
        "",
    ]
    if getattr(args, "render_only", False):
        lines += [
            "Text rendered again from that run's saved per-split results (`--render-only "
            "--state`; the state file is kept outside the repository) after the causes were "
            "written: every number is from the one run above.",
            "",
        ]
    if paper is None:
        lines += [
            f"> **Paper tables file not found** (`{paper_path}`): the paper columns are empty "
            "and no row is checked against a band.",
            "",
        ]
    else:
        lines += [
            f"Paper column: parsed at run time from `{paper_path}` (the tables as published). "
            "Band: **in** when our mean lies within the paper's mean ± 2 std, **OUT** "
            "otherwise, in the paper's normalization (Table 2: regret / BlackBox regret of "
            "the same split; Table 1: ratios of PEHE between methods, since R2P is not "
            "available here).",
            "",
        ]
    lines += [PROTOCOL, "", "## Table 2: test-set regret normalized by BlackBox's regret", ""]
    t2 = state.get("t2", {})
    for v in T2_VARIANTS:
        if v[0] in t2:
            lines += render_t2_variant(v[0], t2[v[0]], paper, outside)
        elif v[1].startswith("ihdp_cevae") and "ihdp" in args.dataset_list:
            lines += [f"### {v[4]}", "", f"Not run: {CEVAE_HOWTO}.", ""]
    lines += ["## Table 1: explanations of HTE models on the test units", "", T1_INTRO, ""]
    t1 = state.get("t1", {})
    for d in TABLE1_DATASETS:
        if d in t1:
            lines += render_t1(d, t1[d], paper, outside)
    lines += render_t3(paper)
    lines += render_outside(outside)
    lines += ["", NOTES]
    return "\n".join(lines) + "\n"


def render_outside(outside: list[tuple[str, str, float, Any]]) -> list[str]:
    lines = [
        "## Rows outside the paper's band, with their causes",
        "",
        "Listed by the script from the marks above; the cause under each is the measured "
        "explanation given in *Causes* below (by its number), or 'cause unknown' with what was "
        "ruled out.",
        "",
        "| table / setting | row | ours | paper | cause |",
        "|---|---|---|---|---|",
    ]
    for where, label, ours, pr in outside:
        if pr and pr[0] == "ratio":
            pcell = f"{pr[1][0]:.2f} ± {pr[1][1]:.2f}"
        else:
            pcell = f"{pr[1][0]:.2f} ± {pr[1][1]:.2f}" if pr else ""
        cause = next((c for pat, c in CAUSE_INDEX if pat(where, label)), "cause unknown")
        lines.append(f"| {where} | {label} | {ours:.2f} | {pcell} | {cause} |")
    if not outside:
        lines.append("| (none) | | | | |")
    return [*lines, ""]


PROTOCOL = """## Protocol choices (the paper is silent on each; ambiguous ones are all run)

- **IHDP form.** (a) econml's surface B (``load_ihdp("B", random_state=0)``: Hill's treated
  subset, 747 units, heterogeneous effect, what ``pex_tuner.datasets.load_ihdp`` returns); (b)
  the CEVAE-format replication 1 with mu0 / mu1 as truth, the form R2P used (SYNTHETIC.md
  section 3), with R2P's outcomes mu_t + N(0, 0.1^2) (noise redrawn per split seed); (c) the
  same file's y_factual (noise sd 1). No PyPI package ships the CEVAE files (see the IHDP
  section below), so (b) and (c) need ``--ihdp-csv``; the file's SHA-256 is printed there.
- **BlackBox.** A T-learner with the library's LightGBM base learner, cross-fitted (5 folds; 2
  on Hillstrom) on the 42% train split; each test unit gets its best predicted arm.
- **Tree depth and leaf size.** Depth 2 (and depth 3 on IHDP and Synthetic A), leaves of >= 5%
  of train (``learn_policy``'s default); GUIDE adds its one guidance split (guide depth 1).
- **GUIDE inputs.** The paper's ensembles combine GreedyTreeSearch-HTE and Distill-Policy;
  ``learn_policy``'s GUIDE combines greedy-tree and No-HTE Greedy. Both are reported; the
  paper-input rows are the ones compared first.
- **Hillstrom (Email Marketing) utility.** Not stated in the paper: visit only (1, 0, 0), and
  equal weights on the standardized outcomes (1 / sd of visit, conversion, spend).
- **Splits.** 10 seeds (0..9); 40% test, the rest 70 / 30 train / validation (42 / 18 / 40).
- **Table 1.** R2P's sizes (300 train / 1000 test, n = 1300 drawn per seed); trees of depth 3
  with leaves of >= 20 training units (the paper states neither)."""

T1_INTRO = (
    "PEHE = sqrt(mean (tau_hat - tau)^2) against the true noise-free effect; between / within "
    "= size-weighted variance of segment means / mean of within-segment variances of the true "
    "effect (they sum to Var(tau) on the test units). 300 train / 1000 test units per split; "
    "trees of depth 3, leaves >= 20 training units."
)

# (predicate on (where, row label), cause sentence) for the rows outside the band; the
# sentences state what was measured (see "Causes" in NOTES).
CAUSE_INDEX: list[tuple[Callable[[str, str], bool], str]] = [
    (
        lambda w, r: "IHDP, econml" in w,
        "(1) the BlackBox denominator: ours beats assign-all-1 10x, the paper's loses to it",
    ),
    (
        lambda w, r: "CEVAE" in w and "arm 0" in r,
        "(2) CEVAE replication 1: nearly every unit gains ~4 from treatment",
    ),
    (
        lambda w, r: "y_factual" in w,
        "(2) heavy-tailed per-split ratios; ratio of means 0.34 (paper 0.36)",
    ),
    (lambda w, r: "CEVAE" in w, "(2) CEVAE form: every policy = assign-all-1 = BlackBox"),
    (
        lambda w, r: "Synthetic A" in w and "No-HTE" in r,
        "(4) our No-HTE finds the x1 split on some splits; the paper's never",
    ),
    (
        lambda w, r: "Synthetic A" in w and "assign all" in r,
        "(3) per-split BlackBox regret more dispersed than the paper's",
    ),
    (
        lambda w, r: "Table 2, Synthetic A" in w,
        "(3) heavy-tailed per-split ratios (tiny BlackBox regret on some splits)",
    ),
    (
        lambda w, r: "Hillstrom" in w and "assign all" in r,
        "(5) arm order: the paper's treatment 1 / 2 are our arms 2 / 1",
    ),
    (
        lambda w, r: "Hillstrom" in w,
        "(5) our BlackBox = assign-all-Mens; the paper's beat it by 4%; cause unknown",
    ),
    (lambda w, r: "Distill-HTE" in r, "(6) honest pruning: 2 segments; see the ablation"),
    (lambda w, r: "VT-RF" in r, "cause unknown (7)"),
    (lambda w, r: "T-learner DT" in r, "cause unknown (7)"),
]

NOTES = """## Causes

Numbers quoted here come from this run unless they cite `benchmarks/results/distill_ablation.md`
(`python benchmarks/paper_checks.py --seeds 5`).

1. **IHDP, econml surface B: the BlackBox denominator.** The two assign-all rows do not depend
   on any model: their ratio of means, all-0 / all-1, is 49.9 / 10.0 = 5.0 here and 1.88 / 0.36
   = 5.2 in the paper, so the data (surface, split sizes, regret definition) behave like the
   paper's. What differs is the denominator: our LightGBM T-learner's regret is 1/10 of
   assign-all-1's, the paper's BlackBox's is 2.8 times assign-all-1's, so every IHDP row is
   about 10 / 0.36 = 28 times the paper's in BlackBox units. Relative to assign-all-1 ours
   and the paper's policies agree in kind (No-HTE = assign-all-1 in both; GreedyTreeSearch-HTE
   ties it here). Ruled out: the base learner (all-1 / BlackBox on this surface, 5 seeds, in
   the ablation file: 13.6 LightGBM, 15.4 scikit-learn GBDT defaults, 4.1 random forest, 1.8
   depth-3 tree, 31 linear; none loses to assign-all-1), the depth (depth 3 changes no
   assign-all or BlackBox row) and the CEVAE form (cause 2). What made the paper's BlackBox
   lose to assign-all-1 is unknown.
2. **IHDP, CEVAE replication 1.** With mu0 / mu1 as truth almost every child gains about 4
   from treatment: assign-all-1's regret is 0.006 against assign-all-0's 4.0, so all-0 /
   BlackBox is in the hundreds (paper 1.88), and every tree, No-HTE and GUIDE policy collapses
   to assign-all-1. With R2P's outcomes (noise sd 0.1) BlackBox ties assign-all-1 (0.98); with
   the file's y_factual (noise sd 1) BlackBox gets worse, assign-all-1's ratio of means drops
   to 0.34 (paper 0.36) and the trees, Distill-Policy and GUIDE land inside the paper's bands,
   but all-0 stays at 250-470 (paper 1.88). Neither form reproduces the paper's all-0 / all-1
   = 5.2; econml's surface B does (cause 1). The CEVAE file is not on PyPI (see the protocol).
3. **Synthetic A, per-split ratios.** BlackBox's regret is tiny (0.0047 against an oracle value
   of 0.18) and varies by split (coefficient of variation 0.6; the paper's normalized
   BlackBox has 0.32), so per-split ratios are heavy-tailed and their means are pulled by one
   or two splits. The medians are the paper's order of magnitude: GreedyTreeSearch-HTE 0.078
   (paper 0.03), Distill-Policy 0.045 (0.05), GUIDE 0.042 (0.01). The assign-all rows (56-57
   vs 47-49) are the same denominator effect: their absolute regret is 0.20, as expected.
4. **Synthetic A, No-HTE.** The paper's No-HTE found no segment (its rows equal assign-all-1).
   Ours splits on x1 on some splits (regret near BlackBox's) and falls back to assign-all on
   the others (median 12.7, mean 22), hence a value between the two.
5. **Hillstrom (Email Marketing).** Assign-all-0 matches (1.50 vs 1.50 ± 0.06). The assign-all
   rows 1 and 2 are the paper's swapped: our arm 1 is Mens E-Mail and arm 2 Womens E-Mail
   (`load_hillstrom`'s order); swapped, ours are 1.21 vs the paper's 1.26 ± 0.10 and 1.00 vs
   1.04 ± 0.02, both inside (the second at the band's edge). The remaining rows (trees and
   GUIDE at 0.99-1.00 vs 1.04, No-HTE Iterative 1.00 vs 1.30) differ because our BlackBox is
   no better than assigning everyone Mens E-Mail while the paper's beat it by 4%; our trees and
   No-HTE also land on Mens E-Mail for nearly everyone. Why our T-learner finds no exploitable
   heterogeneity where the paper's found 4% is unknown; ruled out: the utility (visit only and
   equal standardized weights give the same picture).
6. **Table 1, Distill-HTE / T-learner GBDT (ablation file).** On COVID, honest Distill-HTE
   (PEHE 0.57) is not limited by its teacher: with the TRUE effects as teacher it is still
   0.57, with an RF teacher 0.60; nor by depth (2, 3 and 4 give the same tree). It is limited
   by the per-arm pruning on the estimation half: with ~75 units per arm in that half, a
   segment must keep >= 10 treated and 10 control units, which leaves 2.2 segments on
   average; lowering the threshold to 5 gives 5.6 segments and PEHE 0.40, and dropping honesty
   as well gives 0.24 (ratio 1.3). The best possible depth-3 tree (fitted to the true effects)
   reaches 0.072 = 0.41 of the T-learner, the paper's 0.34: the paper's distilled tree is
   essentially that tree, which an honest tree on 150 + 150 units cannot reach. No setting was
   better on both datasets while staying honest (threshold 5 helps COVID, hurts Synthetic A:
   0.48 vs 0.41), so DistillHTE's defaults are unchanged.
7. **VT-RF / VT-GBDT and T-learner DT / T-learner GBDT.** Cause unknown: the paper states no
   settings for its RF, GBDT and tree learners; ours are 200 trees with leaves >= 5,
   LightGBM with the library's defaults, depth-3 trees with leaves >= 20. Not varied here.
"""


def run_table2_variant(variant: str, args: argparse.Namespace) -> list[dict[str, float]]:
    _, name, depth, wlabel, _ = next(v for v in T2_VARIANTS if v[0] == variant)
    if wlabel == "visit":
        weights = np.asarray(args.hillstrom_weights, dtype=float)
    elif wlabel == "std":
        weights = np.asarray(hillstrom_std_weights())
    else:
        weights = np.array([1.0])
    rows = []
    for s in range(args.splits):
        t0 = time.perf_counter()
        r = table2_split(name, s, args, depth=depth, weights=weights)
        rows.append(r)
        bb = r["blackbox"]
        msg = ", ".join(
            f"{k}={r[k] / bb:.2f}" if bb > 1e-12 else f"{k}={r[k]:.4f}"
            for k, _ in T2_ROWS
            if k != "blackbox" and k in r
        )
        log(
            f"  [T2 {variant}] split {s + 1}/{args.splits} ({time.perf_counter() - t0:.1f}s): "
            f"BlackBox regret {bb:.4f}; normalized {msg}"
        )
    return rows


def run_table1_dataset(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for s in range(args.splits):
        t0 = time.perf_counter()
        r: dict[str, Any] = dict(table1_split(name, s))
        rows.append(r)
        msg = ", ".join(f"{k}={r[k][0]:.3f}" for k, _ in T1_ROWS)
        log(
            f"  [T1 {name}] split {s + 1}/{args.splits} ({time.perf_counter() - t0:.1f}s): "
            f"PEHE {msg}"
        )
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--splits", type=int, default=10, help="train/test splits (seeds 0..n-1)")
    p.add_argument(
        "--datasets",
        default=",".join(ALL_DATASETS),
        help=f"comma-separated subset of {','.join(ALL_DATASETS)} (Synthetic A feeds both "
        "tables; COVID only Table 1; IHDP and Hillstrom only Table 2)",
    )
    p.add_argument(
        "--paper-tables",
        default="../shared/data/PAPER_TABLES.md",
        help="the papers' tables as published (markdown), parsed for the paper column",
    )
    p.add_argument(
        "--ihdp-csv",
        type=Path,
        default=None,
        help="a CEVAE-format IHDP replication (ihdp_npci_1.csv); without it only econml's "
        "surface B is run",
    )
    p.add_argument(
        "--hillstrom-weights",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[1.0, 0.0, 0.0],
        help="utility weights of (visit, conversion, spend) of the 'visit' Hillstrom variant",
    )
    p.add_argument("--hillstrom-folds", type=int, default=2, help="CATE cross-fitting folds")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/paper_tables.md"))
    p.add_argument(
        "--state",
        type=Path,
        default=None,
        help="JSON file to save the raw per-split results in (after every dataset)",
    )
    p.add_argument(
        "--render-only",
        action="store_true",
        help="do not run anything: rewrite --out from the results saved in --state",
    )
    args = p.parse_args(argv)
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in names if d not in ALL_DATASETS]
    if unknown:
        p.error(f"unknown dataset(s) {unknown}; choose from {list(ALL_DATASETS)}")
    args.dataset_list = [d for d in ALL_DATASETS if d in names]
    if len(args.hillstrom_weights) != 3:
        p.error("--hillstrom-weights needs three numbers (visit, conversion, spend)")
    if args.ihdp_csv is not None and not args.ihdp_csv.exists():
        p.error(f"--ihdp-csv {args.ihdp_csv} does not exist; {CEVAE_HOWTO}")
    return args


def _jobs(args: argparse.Namespace) -> list[tuple[str, str, Callable[..., list[Any]]]]:
    jobs: list[tuple[str, str, Callable[..., list[Any]]]] = []
    for d in args.dataset_list:
        for key, name, *_ in T2_VARIANTS:
            if key.split("-")[0].split("_cevae")[0].replace("_std", "") != d:
                continue
            if name.startswith("ihdp_cevae") and args.ihdp_csv is None:
                continue
            jobs.append(("t2", key, run_table2_variant))
        if d in TABLE1_DATASETS:
            jobs.append(("t1", d, run_table1_dataset))
    return jobs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    state: dict[str, Any] = {"t1": {}, "t2": {}}
    saved_keys = ("splits", "hillstrom_weights", "dataset_list", "paper_tables")
    if args.render_only:
        if args.state is None:
            raise SystemExit("--render-only needs --state")
        saved = json.loads(args.state.read_text())
        state = saved["state"]
        for k, v in saved["args"].items():
            if k != "paper_tables":
                setattr(args, k, v)
        args.out.write_text(render(state, args, saved["elapsed"], saved["done"], saved["cmd"]))
        log(f"wrote {args.out} from {args.state}")
        return 0
    cmd = " ".join(["python", *sys.argv])
    if args.ihdp_csv is not None:
        import hashlib

        digest = hashlib.sha256(args.ihdp_csv.read_bytes()).hexdigest()
        cmd += f"  # {args.ihdp_csv.name} sha256 {digest[:16]}..."
    if parse_paper_tables(Path(args.paper_tables)) is None:
        log(f"paper tables not found at {args.paper_tables}: the paper column stays empty")

    def write(done: bool) -> None:
        elapsed = time.perf_counter() - start
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(render(state, args, elapsed, done, cmd))
        if args.state is not None:
            payload = {
                "state": state,
                "elapsed": elapsed,
                "done": done,
                "cmd": cmd,
                "args": {k: getattr(args, k) for k in saved_keys},
            }
            args.state.write_text(json.dumps(payload))

    for table, key, fn in _jobs(args):
        t0 = time.perf_counter()
        log(f"{'Table 2' if table == 't2' else 'Table 1'} / {key}: {args.splits} split(s)")
        state[table][key] = fn(key, args)
        log(f"  done in {time.perf_counter() - t0:.1f}s")
        write(done=False)
    write(done=True)
    log(f"wrote {args.out} ({(time.perf_counter() - start) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
