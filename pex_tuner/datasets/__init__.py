"""Built-in experiments. Synthetic ones carry their true mean potential outcomes."""

from pex_tuner.datasets._truth import ExperimentWithTruth
from pex_tuner.datasets.hillstrom import knn_potential_outcomes, load_hillstrom
from pex_tuner.datasets.ihdp import load_ihdp
from pex_tuner.datasets.online import OnlineSimulator
from pex_tuner.datasets.r2p import make_covid, make_synthetic_a
from pex_tuner.datasets.synthetic import make_synthetic

__all__ = [
    "ExperimentWithTruth",
    "OnlineSimulator",
    "knn_potential_outcomes",
    "load_hillstrom",
    "load_ihdp",
    "make_covid",
    "make_synthetic",
    "make_synthetic_a",
]
