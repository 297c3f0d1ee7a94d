"""Map a function over partitions on the cluster and add up what it returns (tree reduction).

Every distributed computation of pex-tuner has this shape: a function turns one partition of
the experiment (and the matching partition of its persisted predictions) into sufficient
statistics (numpy arrays, or tuples / dicts / lists of them), and the statistics of all
partitions are added pairwise in a tree of Dask tasks (``split_every`` inputs per task), so the
client receives one small result. OPE sums per-(policy, arm) statistics this way; the tree
learners sum histograms.

Scheduling is Dask's: the tasks run on the current ``dask.distributed`` client when there is
one (see :func:`pex_tuner.distributed.client.get_client`), else on Dask's local threads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# the experiment and predictions classes import this module: they are typed as Any here
DistributedExperiment = DistributedPredictions = Any

__all__ = ["add", "compute", "map_partitions_collect", "map_partitions_reduce", "tree_reduce"]


def add(a: Any, b: Any) -> Any:
    """Sum of two results of the same structure: arrays and numbers add, tuples, lists and
    dicts add element by element, ``None`` is the neutral element."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict):
        return {k: add(a.get(k), b.get(k)) for k in {**a, **b}}
    if isinstance(a, tuple | list):
        return type(a)(add(x, y) for x, y in zip(a, b, strict=True))
    return np.add(a, b)


def tree_reduce(parts: Sequence[Any], combine: Callable[[Any, Any], Any], split_every: int = 8):
    """One Dask delayed object that combines ``parts`` (delayed objects) pairwise in a tree.

    Args:
        parts: delayed results, one per partition.
        combine: associative function of two results.
        split_every: inputs per reduction task (the tree's fan-in).
    """
    import dask

    def _combine_many(*xs: Any) -> Any:
        out = xs[0]
        for x in xs[1:]:
            out = combine(out, x)
        return out

    level = list(parts)
    if not level:
        return dask.delayed(lambda: None)()
    while len(level) > 1:
        level = [
            dask.delayed(_combine_many, pure=True)(*level[i : i + split_every])
            for i in range(0, len(level), split_every)
        ]
    return level[0]


def compute(obj: Any, *, progress: bool = False) -> Any:
    """Compute a Dask collection or delayed object on the current client (with Dask's
    progress bar if ``progress``), or with Dask's default scheduler when there is none."""
    import dask

    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        client = None
    if client is None:
        return dask.compute(obj)[0]
    futures = client.compute(obj)
    if progress:
        from distributed import progress as show_progress

        show_progress(futures)
    return client.gather(futures)


def _apply(
    func: Callable[..., Any],
    encoder: Any,
    part: Any,
    pred_part: Any,
    pred_layout: Any,
    split: str | Sequence[str] | None,
    local: bool | str,
    args: tuple,
) -> Any:
    """Run ``func`` on one partition pair, after selecting the split's rows."""
    if pred_part is not None and (
        len(pred_part) != len(part)
        or not np.array_equal(pred_part["_unit_hash"].to_numpy(), part["_unit_hash"].to_numpy())
    ):
        from pex_tuner.errors import InputDataError

        raise InputDataError(
            f"a predictions partition ({len(pred_part)} rows) does not hold the units of the "
            f"experiment partition ({len(part)} rows) in order; predictions must be made from "
            "this experiment (DistributedPredictions.compute)"
        )
    if split is not None:
        mask = part["_split"].isin([split] if isinstance(split, str) else list(split)).to_numpy()
        part = part.loc[mask]
        pred_part = None if pred_part is None else pred_part.loc[mask]
    if not local:
        return func(part, pred_part, *args)
    data = encoder.to_local(part, features=local != "no-features")
    preds = None if pred_part is None else pred_layout.to_local(pred_part)
    return func(data, preds, *args)


def _mapped(
    func: Callable[..., Any],
    experiment: DistributedExperiment,
    predictions: DistributedPredictions | None,
    split: str | Sequence[str] | None,
    local: bool | str,
    args: tuple,
) -> list[Any]:
    """One delayed ``_apply`` per partition pair."""
    import dask

    no_features = local == "no-features"
    parts = experiment.partitions(experiment.encoder.required_columns if no_features else None)
    pred_parts: list[Any] = [None] * len(parts)
    layout = None
    if predictions is not None:
        pred_parts = predictions.partitions()
        layout = predictions.layout
        if len(pred_parts) != len(parts):
            from pex_tuner.errors import InputDataError

            raise InputDataError(
                f"the predictions have {len(pred_parts)} partitions but the experiment has "
                f"{len(parts)}; predict on this experiment (DistributedPredictions.compute)"
            )
    encoder = dask.delayed(experiment.encoder, pure=True)
    return [
        dask.delayed(_apply, pure=True)(func, encoder, p, q, layout, split, local, tuple(args))
        for p, q in zip(parts, pred_parts, strict=True)
    ]


def map_partitions_collect(
    func: Callable[..., Any],
    experiment: DistributedExperiment,
    predictions: DistributedPredictions | None = None,
    *,
    split: str | Sequence[str] | None = None,
    local: bool | str = True,
    args: tuple = (),
    progress: bool = False,
) -> list[Any]:
    """Like :func:`map_partitions_reduce`, but return the list of per-partition results (for
    small results, e.g. a sample of rows)."""
    mapped = _mapped(func, experiment, predictions, split, local, args)
    return list(compute(mapped, progress=progress))


def map_partitions_reduce(
    func: Callable[..., Any],
    experiment: DistributedExperiment,
    predictions: DistributedPredictions | None = None,
    *,
    split: str | Sequence[str] | None = None,
    local: bool | str = True,
    args: tuple = (),
    split_every: int = 8,
    progress: bool = False,
) -> Any:
    """Apply ``func`` to every (experiment partition, predictions partition) pair and add up
    the results on the cluster.

    Args:
        func: ``func(data, predictions, *args)`` returning arrays (or tuples / dicts of them).
            With ``local=True`` (default) ``data`` is the partition as an in-memory
            ExperimentData (shared schema and arms) and ``predictions`` an EffectPredictions
            (or None); ``local="no-features"`` skips encoding the features (``data.X`` has
            no columns: for passes that need only arms, outcomes and propensities); with
            ``local=False`` both are the raw pandas partitions.
        experiment: the partitioned experiment.
        predictions: persisted predictions aligned with ``experiment``, or None.
        split: keep only the units of this split (``"train"``, ``"validation"``, ``"test"``)
            or of these splits (a tuple, e.g. ``("train", "validation")``), or None for all.
        args: extra arguments for ``func`` (shipped once per task).
        split_every: fan-in of the reduction tree.
        progress: show Dask's progress bar (with a distributed client).

    Returns:
        The sum over partitions of ``func``'s results (see :func:`add`).
    """
    mapped = _mapped(func, experiment, predictions, split, local, args)
    return compute(tree_reduce(mapped, add, split_every), progress=progress)
