"""The Distill-HTE segment report (``pex-tuner explain``).

Fit a cross-fitted CATE model and one multi-task distillation tree per treatment, then write the
honest segments with their effect intervals to ``segments.csv`` and ``segments.html``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pex_tuner.checks import Interval, Options, validate_params
from pex_tuner.data import ExperimentData
from pex_tuner.effects import LEARNERS, CateModel
from pex_tuner.explain import DistillHTE
from pex_tuner.files import atomic_write

__all__ = ["SegmentsReport", "explain_segments"]


@dataclass(frozen=True, eq=False)
class SegmentsReport:
    """The segments :func:`explain_segments` found and the files it wrote.

    Attributes:
        data: the experiment.
        segments: ``DistillHTE.segments_``, one row per (treatment, segment).
        csv, html: the files written.
        seconds: wall time of fitting and writing.
    """

    data: ExperimentData
    segments: pd.DataFrame
    csv: Path
    html: Path
    seconds: float

    def text(self) -> str:
        """Per segment its rule and, per outcome, effect and 95% interval (* = excludes 0)."""
        lines = [f"{self.data!r}"]
        for r in self.segments.to_dict("records"):
            lines.append(f"{r['treatment']} S{r['segment']} ({r['n_units']} units): {r['rule']}")
            for o in self.data.outcomes:
                star = "*" if r[f"significant[{o}]"] else " "
                lines.append(
                    f"    {o}: {r[f'effect[{o}]']:+.4f} [{r[f'ci_low[{o}]']:+.4f}, "
                    f"{r[f'ci_high[{o}]']:+.4f}]{star}"
                )
        lines.append(
            f"\n{len(self.segments)} segments in {self.seconds:.1f} s (* = 95% interval "
            f"excludes 0); wrote {self.csv} and {self.html}"
        )
        return "\n".join(lines)


def explain_segments(
    data: ExperimentData,
    *,
    out: str | Path,
    max_depth: int = 3,
    min_units_per_arm: int = 30,
    outcome_weights: Mapping[str, float] | None = None,
    learner: str = "t",
    n_folds: int = 5,
    seed: int = 0,
) -> SegmentsReport:
    """Distill-HTE segments per treatment, written to ``out/segments.csv`` and ``.html``.

    Args:
        data: the logged experiment.
        out: output folder (created).
        max_depth: depth of each distillation tree.
        min_units_per_arm: treated and control units every segment keeps (estimation half).
        outcome_weights: outcome -> loss weight in the tree (None: 1 each).
        learner: CATE meta-learner; n_folds: its cross-fitting folds.
        seed: ``random_state`` of the model and the tree.

    Raises:
        ConfigurationError: a bad option, before the model is fitted.
    """
    from pex_tuner.plotting import plot_segments, write_report

    validate_params(
        {"learner": learner, "n_folds": n_folds, "seed": seed},
        {
            "learner": [Options(LEARNERS)],
            "n_folds": [Interval(int, 2, None)],
            "seed": [Interval(int, 0, None)],
        },
    )

    explainer = DistillHTE(
        max_depth=max_depth,
        min_units_per_arm=min_units_per_arm,
        outcome_weights=dict(outcome_weights) if outcome_weights else None,
        random_state=seed,
    )
    model = CateModel(learner=learner, n_folds=n_folds, random_state=seed, progress=False)
    t0 = time.perf_counter()
    explainer.fit(data, model=model)
    seg = explainer.segments_
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    csv = atomic_write(folder / "segments.csv", lambda tmp: seg.to_csv(tmp, index=False))
    n_s, n_e = len(explainer.structure_indices_), len(explainer.estimation_indices_)
    html = folder / "segments.html"
    write_report(
        html,
        [plot_segments(seg)],
        title="pex-tuner: Distill-HTE segments",
        sections=[
            repr(data),
            f"One multi-task tree per treatment (max depth {max_depth}) distilled from "
            f"{learner.upper()}-learner CATE predictions of all outcomes on {n_s} "
            f"structure units; segment effects and 95% intervals from {n_e} other units "
            f"(honest), each segment with at least {min_units_per_arm} treated and "
            "control units. Green: significantly good (direction-aware), red: significantly "
            "bad, gray: not significant. Hover a bar for its rule.",
        ],
        tables={"Segments": seg},
    )
    return SegmentsReport(data, seg, csv, html, time.perf_counter() - t0)
