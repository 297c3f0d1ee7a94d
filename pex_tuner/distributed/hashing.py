"""Unit hashes, and the splits, folds and sample keys derived from them.

Every row of a partitioned experiment gets a 64-bit unit hash (column ``_unit_hash``):

* with a unit id column: ``pandas.util.hash_pandas_object`` of the id (so the same id gets the
  same hash on every machine, in every partition and in every file layout; note that ``5`` and
  ``"5"`` are different ids);
* without one: the same hash of the row's feature and treatment values (identical rows share
  a hash, hence a split and a fold, which is harmless).

Split, fold and sample membership are pure functions of that hash, each through its own
salted SplitMix64 finalizer so that they are independent of each other: train / validation /
test membership and cross-fitting folds do not depend on how the data are partitioned,
ordered or which worker reads them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "SPLITS",
    "fold_of",
    "sample_key",
    "split_of",
    "uniform_of",
    "unit_hash",
]

SPLITS = ("train", "validation", "test")

_SALT_SPLIT = np.uint64(0x9E3779B97F4A7C15)
_SALT_FOLD = np.uint64(0xD1B54A32D192ED03)
_SALT_SAMPLE = np.uint64(0x8CB92BA72F3D8DD7)


def _mix(h: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer of uint64 values, shape preserved (wrapping arithmetic)."""
    z = np.asarray(h, dtype=np.uint64).copy()
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def uniform_of(h: np.ndarray, salt: np.uint64 = _SALT_SPLIT) -> np.ndarray:
    """A uniform number in [0, 1) per unit hash, float ndarray of shape (n_units,)."""
    return (_mix(np.asarray(h, dtype=np.uint64) ^ salt) >> np.uint64(11)).astype(np.float64) * (
        2.0**-53
    )


def unit_hash(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """64-bit hash of each row's values in ``columns``, uint64 ndarray of shape (n_rows,).

    Pass ``[unit_id]`` when the experiment has a unit id column, else the feature and
    treatment columns.
    """
    if len(frame) == 0:
        return np.zeros(0, dtype=np.uint64)
    sub = frame[list(columns)]
    hashed = pd.util.hash_pandas_object(sub.iloc[:, 0] if sub.shape[1] == 1 else sub, index=False)
    return hashed.to_numpy(dtype=np.uint64)


def split_of(h: np.ndarray, test_size: float, validation_size: float) -> np.ndarray:
    """Split name per unit hash, object ndarray of shape (n_units,).

    A unit is in ``test`` with probability ``test_size``, else in ``validation`` with
    probability ``validation_size`` (of the rest), else in ``train``: the same shares as
    :meth:`ExperimentData.split` (42% / 18% / 40% by default), unstratified but independent of
    the randomized arm.
    """
    u = uniform_of(h, _SALT_SPLIT)
    cut_val = test_size + (1.0 - test_size) * validation_size
    codes = np.where(u < test_size, 2, np.where(u < cut_val, 1, 0))
    return np.asarray(SPLITS, dtype=object)[codes]


def fold_of(h: np.ndarray, n_folds: int) -> np.ndarray:
    """Cross-fitting fold in ``0 .. n_folds - 1`` per unit hash, int64 ndarray (n_units,)."""
    return (_mix(np.asarray(h, dtype=np.uint64) ^ _SALT_FOLD) % np.uint64(n_folds)).astype(np.int64)


def sample_key(h: np.ndarray, random_state: int) -> np.ndarray:
    """Uniform sampling key in [0, 1) per unit hash for a seed, shape (n_units,): a sample of
    size n is the n units with the smallest keys, whatever the partitioning."""
    seed = _mix(np.array([int(random_state) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    return uniform_of(np.asarray(h, dtype=np.uint64) ^ seed, _SALT_SAMPLE)
