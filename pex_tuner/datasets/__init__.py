"""Built-in experiments. Synthetic ones carry their true mean potential outcomes."""

from pex_tuner.datasets._truth import ExperimentWithTruth
from pex_tuner.datasets.hillstrom import knn_potential_outcomes, load_hillstrom
from pex_tuner.datasets.ihdp import load_ihdp
from pex_tuner.datasets.online import OnlineSimulator
from pex_tuner.datasets.r2p import make_covid, make_synthetic_a
from pex_tuner.datasets.synthetic import (
    SyntheticParquet,
    make_synthetic,
    write_synthetic_parquet,
)

__all__ = [
    "ExperimentWithTruth",
    "OnlineSimulator",
    "SyntheticParquet",
    "knn_potential_outcomes",
    "load_hillstrom",
    "load_ihdp",
    "make_covid",
    "make_synthetic",
    "make_synthetic_a",
    "write_synthetic_parquet",
]
