"""The MineThatData e-mail experiment (Hillstrom, 2008): 64,000 customers, 3 arms.

Arms: ``No E-Mail`` (control), ``Mens E-Mail``, ``Womens E-Mail``; outcomes ``visit``,
``conversion``, ``spend`` (all maximized). The CSV ships compressed inside the package
(sha256 of the uncompressed file: 27bab8c5...cd7e2, see shared/data/SOURCES.md).

Potential outcomes are imputed as in the interpretable-experimentation paper: for each unit and
each arm it did not receive, the mean outcome of its 5 nearest neighbours in that arm (Euclidean
distance on standardized encoded features); under its own arm, its observed outcome.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from pex_tuner.data import ExperimentData
from pex_tuner.datasets._truth import ExperimentWithTruth

__all__ = ["knn_potential_outcomes", "load_hillstrom", "read_hillstrom_frame"]

HILLSTROM_OUTCOMES = {"visit": "max", "conversion": "max", "spend": "max"}
HILLSTROM_FEATURES = [
    "recency",
    "history_segment",
    "history",
    "mens",
    "womens",
    "zip_code",
    "newbie",
    "channel",
]


def read_hillstrom_frame() -> pd.DataFrame:
    """The raw 64,000-row Hillstrom table as a DataFrame."""
    path = resources.files("pex_tuner.datasets").joinpath("_data/hillstrom.csv.gz")
    with resources.as_file(path) as p:
        return pd.read_csv(p, compression="gzip")


def knn_potential_outcomes(data: ExperimentData, n_neighbors: int = 5) -> np.ndarray:
    """Nearest-neighbour imputation of every unit's outcomes under every arm.

    Returns:
        ndarray of shape (n_units, n_arms, n_outcomes): observed outcomes for the received arm,
        the mean of the ``n_neighbors`` nearest units of arm k (standardized features) otherwise.
    """
    from sklearn.neighbors import NearestNeighbors

    Xs = data.X - data.X.mean(axis=0)
    sd = Xs.std(axis=0)
    Xs = Xs / np.where(sd > 0, sd, 1.0)
    po = np.empty((data.n_units, data.n_arms, data.n_outcomes))
    for k in range(data.n_arms):
        in_k = data.treatment == k
        others = np.flatnonzero(~in_k)
        po[in_k, k, :] = data.Y[in_k]
        nn = NearestNeighbors(n_neighbors=n_neighbors).fit(Xs[in_k])
        _, nbr = nn.kneighbors(Xs[others])
        po[others, k, :] = data.Y[in_k][nbr].mean(axis=1)
    return po


@lru_cache(maxsize=2)
def _load(n_neighbors: int) -> ExperimentWithTruth:
    frame = read_hillstrom_frame()
    frame.insert(0, "customer_id", np.arange(len(frame)))
    data = ExperimentData.from_frame(
        frame,
        treatment="segment",
        control="No E-Mail",
        outcomes=HILLSTROM_OUTCOMES,
        features=HILLSTROM_FEATURES,
        unit_id="customer_id",
    )
    po = knn_potential_outcomes(data, n_neighbors=n_neighbors)
    po.setflags(write=False)
    return ExperimentWithTruth(data=data, potential_outcomes=po, name="hillstrom")


def load_hillstrom(*, n_neighbors: int = 5) -> ExperimentWithTruth:
    """Load Hillstrom with nearest-neighbour potential outcomes (cached per process)."""
    return _load(int(n_neighbors))
