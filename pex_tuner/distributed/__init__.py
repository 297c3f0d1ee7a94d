"""Past one machine: the pex-tuner workflow on Dask, from Parquet, at any number of units.

* :class:`DistributedExperiment`: a validated experiment partitioned over a cluster, with
  splits and folds drawn from a unit-id hash;
* :class:`DistributedPredictions`: CATE predictions persisted once as Parquet, aligned with the
  experiment partition by partition;
* :func:`evaluate`, :func:`evaluate_linear_policies`: OPE as per-partition sufficient
  statistics added up on the cluster (the numbers of the in-memory path);
* :class:`DistributedOPEMetric`: the tuner's OPE metric, one pass per batch of policies;
* :func:`get_client`: a ``dask.distributed`` client for a scheduler address, a local cluster,
  or the current one.

Dask is imported on first use of a name from this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DistributedExperiment": "pex_tuner.distributed.experiment",
    "DistributedPredictions": "pex_tuner.distributed.predictions",
    "DistributedCateModel": "pex_tuner.distributed.effects",
    "fit_effects_distributed": "pex_tuner.distributed.effects",
    "DistributedOPEMetric": "pex_tuner.distributed.metric",
    "evaluate": "pex_tuner.distributed.ope",
    "evaluate_assignments": "pex_tuner.distributed.ope",
    "evaluate_linear_policies": "pex_tuner.distributed.ope",
    "get_client": "pex_tuner.distributed.client",
    "map_partitions_reduce": "pex_tuner.distributed.reduce",
}

__all__ = [
    "DistributedCateModel",
    "DistributedExperiment",
    "DistributedOPEMetric",
    "DistributedPredictions",
    "evaluate",
    "evaluate_assignments",
    "evaluate_linear_policies",
    "fit_effects_distributed",
    "get_client",
    "map_partitions_reduce",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pex_tuner.distributed' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover
    from pex_tuner.distributed.client import get_client
    from pex_tuner.distributed.effects import DistributedCateModel, fit_effects_distributed
    from pex_tuner.distributed.experiment import DistributedExperiment
    from pex_tuner.distributed.metric import DistributedOPEMetric
    from pex_tuner.distributed.ope import (
        evaluate,
        evaluate_assignments,
        evaluate_linear_policies,
    )
    from pex_tuner.distributed.predictions import DistributedPredictions
    from pex_tuner.distributed.reduce import map_partitions_reduce
