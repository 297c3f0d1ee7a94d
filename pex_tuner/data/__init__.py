"""The logged experiment: :class:`ExperimentData` (validated, immutable), its readers and
seeded splits.

Modules: ``experiment`` (ExperimentData, DataSplit) and ``validation`` (the checks that
:meth:`ExperimentData.from_frame` runs, one function per step).
"""

from pex_tuner.data.experiment import DIRECTIONS, DataSplit, ExperimentData
from pex_tuner.data.experiment import _feature_matrix as _feature_matrix  # effects, explain

__all__ = ["DIRECTIONS", "DataSplit", "ExperimentData"]
