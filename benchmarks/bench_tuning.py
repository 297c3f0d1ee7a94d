"""Benchmark: true hypervolume of offline-tuned linear policies on make_synthetic.

Setting (issue): ``make_synthetic`` (engagement max, retention max, cost min), several seeds.
Per seed, one CATE model is fitted on the train split (same data, same ``random_state``, hence
the same split and the same model in every run). For each method (``--methods``: qLogNParEGO,
qLogNParEGO-HV, qLogNParEGO-HV with relative scaling, Sobol, qLogNEHVI) and each policy class
(with per-arm biases / without), an ``OfflineTuner`` suggests ``--budget`` policies in batches
of ``--batch-size``, each scored by DR OPE on ``--split`` (the validation split, or train +
validation with out-of-fold predictions on the training units). The policy class (parameter
ranges) is the same for every split: it comes from the validation predictions; a method with
relative scaling searches the relative class (see ``pex_tuner.tuning.space``).

The TRUE value of a suggested policy is the mean true potential outcome, on the TEST split units,
of the arms it assigns there (it acts on the CATE model's test predictions). The TRUE
hypervolume after n evaluations is the hypervolume, in maximization space, of the true values
of the first n tuned policies; the reference point is the true value of assign-all-control on the
test units. The reference "best" per policy class (scaling x biases) is the true hypervolume of
the first 2,000 points of a scrambled Sobol sequence (scipy) over the same parameter space,
mapped the way Ax's Sobol generator maps it (log scale for log-scaled parameters). True
hypervolumes of different classes are comparable: same units, same reference point.

Reported: mean +- std over seeds of the true hypervolume after each checkpoint, the ratio of each
ParEGO variant at the last checkpoint to the Sobol-2000 reference of its class, mean seconds per
candidate batch (``batch_seconds``: one value per generated batch), and whether the targets are
met: ParEGO@64 >= 95% of Sobol-2000, ParEGO@64 > Sobol@64, with-bias > without-bias.

Runs are independent per (seed, policy class with / without biases); ``--jobs`` runs that many
in parallel processes (each fits the seed's CATE model itself; fits are deterministic). torch
runs on one intra-op thread per process by default (``--threads``): on a small shared machine,
two threads made candidate generation several times slower in our measurements.

Usage:
    python benchmarks/bench_tuning.py [--n 20000] [--seeds 0 1 2] [--budget 64]
        [--batch-size 8] [--split validation|train+validation] [--methods ...]
        [--reference 2000] [--threads 1] [--jobs 1] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

from pex_tuner.datasets import make_synthetic
from pex_tuner.tuning import OfflineTuner
from pex_tuner.tuning.frontier import hypervolume, to_max_space

METHODS = ("qLogNParEGO", "qLogNParEGO-HV", "qLogNParEGO-HV-relative", "sobol", "qLogNEHVI")
PAREGO = ("qLogNParEGO", "qLogNParEGO-HV", "qLogNParEGO-HV-relative")
LABELS = {
    "qLogNParEGO": "qLogNParEGO",
    "qLogNParEGO-HV": "qLogNParEGO-HV",
    "qLogNParEGO-HV-relative": "qLogNParEGO-HV, relative",
    "sobol": "Sobol",
    "qLogNEHVI": "qLogNEHVI",
}
#: method -> (acquisition, scaling of the policy space)
SPECS = {
    "qLogNParEGO": ("qLogNParEGO", "absolute"),
    "qLogNParEGO-HV": ("qLogNParEGO-HV", "absolute"),
    "qLogNParEGO-HV-relative": ("qLogNParEGO-HV", "relative"),
    "sobol": ("sobol", "absolute"),
    "qLogNEHVI": ("qLogNEHVI", "absolute"),
}


def library_version() -> str:
    """The git commit of the checkout and whether pex_tuner had uncommitted changes."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "pex_tuner"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"commit {head}" + (" with uncommitted changes in pex_tuner/" if dirty else "")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def watch(tuner: OfflineTuner, label: str, budget: int, every: float = 20.0) -> None:
    """Log progress from inside ``tuner.run`` (at most one line per ``every`` seconds) by
    wrapping this tuner instance's ``complete_trial``; the batches are unchanged."""
    inner = tuner.complete_trial
    state = {"last": time.perf_counter(), "start": time.perf_counter()}

    def complete_trial(trial_index: int):
        out = inner(trial_index)
        now = time.perf_counter()
        n = tuner.n_evaluations
        if now - state["last"] >= every or n == budget:
            log(f"{label}: {n}/{budget} evals, {now - state['start']:.0f}s")
            state["last"] = now
        return out

    tuner.complete_trial = complete_trial


def true_values(
    W: np.ndarray, B: np.ndarray, tau: np.ndarray, po: np.ndarray, chunk: int = 64
) -> np.ndarray:
    """True mean outcomes (P, J) of P linear policies (weights W (P, J), biases B (P, K)).

    Utilities are summed as ``LinearUtilityPolicy.utilities`` does (biases, then outcome by
    outcome), argmax over arms with ties to the lowest index, then the true potential outcomes
    ``po`` (n, K, J) of the assigned arms are averaged over units.
    """
    n = tau.shape[0]
    rows = np.arange(n)[None, :]
    out = np.empty((len(W), po.shape[2]))
    for s in range(0, len(W), chunk):
        w, b = W[s : s + chunk], B[s : s + chunk]
        u = np.empty((len(w), n, tau.shape[1]))
        u[:] = b[:, None, :]
        for j in range(tau.shape[2]):
            u += w[:, j, None, None] * tau[None, :, :, j]
        a = np.argmax(u, axis=2)  # (p, n)
        out[s : s + chunk] = po[rows, a].mean(axis=1)
    return out


def sobol_unit(d: int, n: int, seed: int) -> np.ndarray:
    """The first n points (n, d) of a scrambled Sobol sequence in the unit cube."""
    from scipy.stats import qmc

    m = int(np.ceil(np.log2(max(n, 2))))
    return qmc.Sobol(d=d, scramble=True, seed=seed).random_base2(m)[:n]


def sobol_params(space, n: int, seed: int) -> list[dict[str, float]]:
    """The first n Sobol points over the space, mapped as the tuner searches it
    (``PolicySpace.from_unit``: log scale for log-scaled parameters)."""
    return space.from_unit(sobol_unit(len(space.parameter_names), n, seed))


def batch_times(tuned: list[dict]) -> list[tuple[float, bool]]:
    """One (seconds, is_model_batch) per generated batch: consecutive trials sharing one
    ``batch_seconds`` value came from one batch."""
    out: list[tuple[float, bool]] = []
    prev = None
    for r in tuned:
        s = r.get("batch_seconds")
        if s is None:
            continue
        if s != prev:
            out.append((float(s), False))
            prev = s
        if r.get("node") not in (None, "Sobol"):
            out[-1] = (out[-1][0], True)
    return out


def run_task(seed: int, use_biases: bool, args) -> dict:
    """Every method on one seed and one policy class (with or without biases)."""
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t_task = time.perf_counter()
    exp = make_synthetic(args.n, random_state=seed)
    data = exp.data
    dirs = data.directions
    effects = None
    res: dict = {"hv": {}, "batches": {}, "ref_hv": {}, "sobol_init": {}, "init_trials": {}}
    test_idx = None
    tau = po = ref = None
    spaces: dict[str, object] = {}
    tag = f"seed {seed}, biases={use_biases}"
    for method in args.methods:
        acquisition, scaling = SPECS[method]
        t0 = time.perf_counter()
        tuner = OfflineTuner(
            data,
            acquisition=acquisition,
            scaling=scaling,
            use_biases=use_biases,
            batch_size=args.batch_size,
            split=args.split,
            random_state=seed,
            n_folds=args.folds,
            effects=effects,
            progress=False,
        )
        if effects is None:
            effects = tuner.effects
            log(f"{tag}: CATE model fitted in {time.perf_counter() - t0:.1f}s")
            test_idx = tuner.split_indices["test"]
            test = exp.subset(test_idx)
            pred = effects.predict(test.data, out_of_fold="never")
            tau, po = pred.tau, test.potential_outcomes
            control = test.policy_value(np.zeros(len(test_idx), dtype=np.int64))
            ref = to_max_space(control[None, :], dirs)[0]
            res["reference_point"] = ref
        else:
            assert np.array_equal(tuner.split_indices["test"], test_idx)
        spaces.setdefault(scaling, tuner.space)
        watch(tuner, f"{tag}: {LABELS[method]}", args.budget)
        tuner.run(args.budget)
        tuned = [r for r in tuner.records if r["kind"] == "tuned"]
        W, Bm = tuner.space.to_matrices([r["parameters"] for r in tuned])
        Y = to_max_space(true_values(W, Bm, tau, po), dirs)
        # cross-check the vectorized truth against the library on a few policies
        step = max(1, len(tuned) // 4)
        for r, y in zip(tuned[::step], Y[::step], strict=False):
            a = tuner.policy(r["policy"]).assign_index_from_effects(pred)
            y_lib = to_max_space(test.policy_value(a)[None, :], dirs)[0]
            assert np.allclose(y, y_lib, rtol=0, atol=1e-12), (y, y_lib)
        res["hv"][method] = {c: hypervolume(Y[:c], ref) for c in args.checkpoints}
        res["batches"][method] = batch_times(tuned)
        res["sobol_init"][method] = sum(r.get("node") == "Sobol" for r in tuned)
        res["init_trials"] = tuner.config["init_trials"]
        log(
            f"{tag}: {LABELS[method]:<11} {len(tuned)} evals in "
            f"{time.perf_counter() - t0:6.1f}s, true HV "
            + ", ".join(f"@{c}={v:.4g}" for c, v in res["hv"][method].items())
        )
    # the reference of each policy class: 2,000 Sobol points over the same space
    for scaling, space in spaces.items():
        W, Bm = space.to_matrices(sobol_params(space, args.reference, seed))
        Y = to_max_space(true_values(W, Bm, tau, po), dirs)
        res["ref_hv"][scaling] = hypervolume(Y, ref)
        hv_ref = res["ref_hv"][scaling]
        log(f"{tag}: Sobol-{args.reference} reference ({scaling}): true HV {hv_ref:.4g}")
    res["seconds"] = time.perf_counter() - t_task
    return res


def run_all(args) -> dict:
    """results[seed][use_biases] for every seed, ``args.jobs`` tasks at a time."""
    tasks = [(s, b) for s in args.seeds for b in (True, False)]
    results: dict = {s: {} for s in args.seeds}
    if args.jobs <= 1:
        for s, b in tasks:
            results[s][b] = run_task(s, b, args)
            log(f"seed {s}, biases={b}: done in {results[s][b]['seconds']:.0f}s")
        return results
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_task, s, b, args): (s, b) for s, b in tasks}
        for f in as_completed(futures):
            s, b = futures[f]
            results[s][b] = f.result()
            log(f"seed {s}, biases={b}: done in {results[s][b]['seconds']:.0f}s")
    return results


def fmt(values: list[float], digits: int = 4) -> str:
    v = np.asarray(values, dtype=float)
    sd = v.std(ddof=1) if len(v) > 1 else 0.0
    return f"{v.mean():.{digits}f} ± {sd:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="units in make_synthetic")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budget", type=int, default=64, help="tuned evaluations per run")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument(
        "--split",
        default="validation",
        choices=["validation", "train+validation"],
        help="units the tuners' OPE metric evaluates on",
    )
    ap.add_argument(
        "--methods", nargs="+", default=list(METHODS), choices=list(METHODS), help="methods"
    )
    ap.add_argument("--folds", type=int, default=3, help="cross-fitting folds of the CATE model")
    ap.add_argument("--reference", type=int, default=2000, help="Sobol points of the reference")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (0: leave torch's default)"
    )
    ap.add_argument("--jobs", type=int, default=1, help="(seed, class) runs in parallel")
    ap.add_argument("--out", type=str, default=None, help="write a markdown report here")
    args = ap.parse_args()
    args.checkpoints = [c for c in (16, 32, 64) if c < args.budget] + [args.budget]
    args.methods = [m for m in METHODS if m in args.methods]
    if "sobol" not in args.methods:
        ap.error("--methods must include sobol (a target compares with it)")

    import torch

    args.torch_threads = args.threads if args.threads > 0 else torch.get_num_threads()
    args.library = library_version()

    t_start = time.perf_counter()
    log(f"{len(args.seeds) * 2} runs (seeds x with / without biases), {args.jobs} at a time")
    results = run_all(args)
    text = render(args, results, time.perf_counter() - t_start)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text)
    print(text)


def render(args, results: dict, wall: float) -> str:
    """The markdown report: ``results[seed][use_biases]`` from ``run_task``."""
    import torch

    seeds, last = list(results), args.checkpoints[-1]
    classes = [c for c in ("absolute", "relative") if any(SPECS[m][1] == c for m in args.methods)]

    def hv(method: str, biases: bool, c: int) -> list[float]:
        return [results[s][biases]["hv"][method][c] for s in seeds]

    def ref_hv(scaling: str, biases: bool) -> list[float]:
        return [results[s][biases]["ref_hv"][scaling] for s in seeds]

    # hypervolumes are small numbers: show them in a unit of the reference's magnitude
    top = max(max(ref_hv(c, b)) for c in classes for b in (True, False))
    e = int(np.floor(np.log10(max(top, 1e-300))))
    unit = 10.0**e

    def f(values: list[float]) -> str:
        return fmt([v / unit for v in values], 3)

    cmd = "python " + " ".join([os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    lines = [
        "# Tuning benchmark: true hypervolume of tuned policies on make_synthetic",
        "",
        f"Command: `{cmd}`",
        "",
        f"Total wall time: {wall / 60:.1f} min ({wall:.0f} s), {args.jobs} run(s) at a time.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} logical cores (shared), Python "
        f"{platform.python_version()}, numpy {np.__version__}, torch {torch.__version__} "
        f"({args.torch_threads} intra-op thread(s) per process); pex_tuner at {args.library}.",
        f"Setting: `make_synthetic({args.n:,}, random_state=seed)` (4 arms; objectives "
        "engagement max, retention max, cost min), seeds "
        f"{', '.join(map(str, seeds))}; T-learner CATE model with {args.folds} folds fitted "
        f"on the train split; {args.budget} tuned evaluations per run in batches of "
        f"{args.batch_size}, scored by DR OPE on "
        + (
            "the validation split (18% of units)"
            if args.split == "validation"
            else "train + validation (60% of units; out-of-fold CATE predictions on the "
            "training units)"
        )
        + "; the policy class (parameter ranges) comes from the validation predictions, with "
        "absolute scaling unless the method says relative (`pex_tuner/tuning/space.py`). "
        "TRUE values: true "
        "potential outcomes of the arms each policy assigns on the test split (40% of units); "
        "reference point: true value of assign-all-control on the test split. Hypervolume in "
        "maximization space (cost negated).",
        "",
        f"Hypervolumes are shown in units of 1e{e} (true HV / 1e{e}).",
        *(
            [
                "",
                f"n reduced from the default 20,000 to {args.n:,} to keep the run time down.",
            ]
            if args.n < 20_000
            else []
        ),
        "",
        "## True hypervolume after n evaluations (mean ± std over seeds)",
        "",
        "| method | biases | " + " | ".join(f"HV @ {c}" for c in args.checkpoints) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in args.checkpoints) + " |",
    ]
    for biases in (True, False):
        yn = "yes" if biases else "no"
        for method in args.methods:
            cells = " | ".join(f(hv(method, biases, c)) for c in args.checkpoints)
            lines.append(f"| {LABELS[method]} | {yn} | {cells} |")
        for c in classes:
            cells = " | ".join([""] * (len(args.checkpoints) - 1) + [f(ref_hv(c, biases))])
            lines.append(
                f"| Sobol-{args.reference} reference, {c} ({args.reference:,} evals) | {yn} | "
                f"{cells} |"
            )
    lines += [
        "",
        f"Per seed, true HV at the last checkpoint (units of 1e{e}):",
        "",
        "| method | biases | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in seeds) + " |",
    ]
    for biases in (True, False):
        yn = "yes" if biases else "no"
        for method in args.methods:
            cells = " | ".join(f"{v / unit:.3f}" for v in hv(method, biases, last))
            lines.append(f"| {LABELS[method]} | {yn} | {cells} |")
        for c in classes:
            cells = " | ".join(f"{v / unit:.3f}" for v in ref_hv(c, biases))
            lines.append(f"| Sobol-{args.reference}, {c} | {yn} | {cells} |")

    parego = [m for m in PAREGO if m in args.methods]
    lines += [
        "",
        f"## ParEGO @ {last} relative to the Sobol-{args.reference} reference of its class",
        "",
        "| method | biases | ratio per seed | mean ratio |",
        "| --- | --- | --- | ---: |",
    ]
    ratios = {}
    for method in [*parego, *(m for m in ("qLogNEHVI",) if m in args.methods)]:
        for biases in (True, False):
            r = np.array(hv(method, biases, last)) / np.array(ref_hv(SPECS[method][1], biases))
            ratios[(method, biases)] = r
            lines.append(
                f"| {LABELS[method]} | {'yes' if biases else 'no'} | "
                f"{', '.join(f'{x:.3f}' for x in r)} | {r.mean():.3f} |"
            )

    model_methods = [m for m in args.methods if m != "sobol"]
    init = results[seeds[0]]
    lines += [
        "",
        "## Seconds per candidate batch",
        "",
        "Wall time of generating one batch of candidates (`batch_seconds`; one value per batch; "
        "n = batches over all seeds: a run can have one more than budget / batch size because "
        "the Sobol batch that reaches `init_trials` stops there and a short batch ends the "
        f"run), with {args.jobs} run(s) sharing the machine. Model batches are those that "
        "contain at least one trial from the BoTorch (acquisition) node; the others are Sobol "
        "initialization. Sobol initialization trials actually run per "
        + " / ".join(LABELS[m] for m in model_methods)
        + " run: "
        + "; ".join(
            f"{'with' if b else 'without'} biases "
            + "/".join(
                str(sorted({results[s][b]["sobol_init"][m] for s in seeds})) for m in model_methods
            )
            + f" (configured `init_trials` = {init[b]['init_trials']})"
            for b in (True, False)
        )
        + ".",
        "",
        "| method | biases | all batches | model batches only |",
        "| --- | --- | ---: | ---: |",
    ]
    for method in args.methods:
        for biases in (True, False):
            bt = [b for s in seeds for b in results[s][biases]["batches"][method]]
            allb = [t for t, _ in bt]
            model = [t for t, m in bt if m]
            lines.append(
                f"| {LABELS[method]} | {'yes' if biases else 'no'} | "
                f"{np.mean(allb):.2f} (n={len(allb)}) | "
                + (f"{np.mean(model):.2f} (n={len(model)})" if model else "n/a")
                + " |"
            )

    so_b = np.array(hv("sobol", True, last))
    so_nb = np.array(hv("sobol", False, last))

    def met(ok: bool) -> str:
        return "**met**" if ok else "**NOT met**"

    lines += [
        "",
        "## Targets",
        "",
        f"Sobol @ {last} and the with / without comparison use true hypervolumes, comparable "
        "across policy classes; the 95% target compares each method with the reference of its "
        "own class.",
        "",
    ]
    for method in parego:
        name = LABELS[method]
        pe_b = np.array(hv(method, True, last))
        pe_nb = np.array(hv(method, False, last))
        rb, rnb = ratios[(method, True)], ratios[(method, False)]
        t1 = rb.mean() >= 0.95
        t2 = pe_b.mean() > so_b.mean()
        t3 = pe_b.mean() > pe_nb.mean()
        lines += [
            f"{name}:",
            "",
            f"1. {name} @ {last} (with biases) >= 95% of the Sobol-{args.reference} reference "
            f"of the same policy class: mean ratio {rb.mean():.3f} "
            f"(per seed {', '.join(f'{x:.3f}' for x in rb)}; >= 0.95 in "
            f"{int((rb >= 0.95).sum())}/{len(seeds)} seeds) — {met(t1)} on the mean. "
            f"Without biases: mean ratio {rnb.mean():.3f} — "
            f"{'met' if rnb.mean() >= 0.95 else 'not met'}.",
            f"2. {name} @ {last} beats Sobol @ {last} (with biases): {pe_b.mean() / unit:.3f} "
            f"vs {so_b.mean() / unit:.3f} (1e{e}), higher in {int((pe_b > so_b).sum())}/"
            f"{len(seeds)} seeds — {met(t2)}. Without biases: {pe_nb.mean() / unit:.3f} vs "
            f"{so_nb.mean() / unit:.3f}, higher in "
            f"{int((pe_nb > so_nb).sum())}/{len(seeds)} seeds.",
            f"3. With biases beats without biases ({name} @ {last}): {pe_b.mean() / unit:.3f} "
            f"vs {pe_nb.mean() / unit:.3f} (1e{e}), higher in {int((pe_b > pe_nb).sum())}/"
            f"{len(seeds)} seeds — {met(t3)}.",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
