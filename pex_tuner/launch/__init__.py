"""Launch: a policy artifact with a randomized holdout, deterministic assignment, launch
documents and backtests.

Modules: ``holdout`` (LaunchedPolicy, hash-based assignment), ``document`` (the launch file
format and the holdout bounds, shared with the service), ``backtest`` (policy vs holdout).
"""

from pex_tuner.launch.backtest import backtest
from pex_tuner.launch.document import (
    HOLDOUT_RANGE,
    LAUNCH_FORMAT,
    LAUNCH_VERSION,
    launch_document,
)
from pex_tuner.launch.holdout import LaunchedPolicy, hash_uniforms, launch_policy

__all__ = [
    "HOLDOUT_RANGE",
    "LAUNCH_FORMAT",
    "LAUNCH_VERSION",
    "LaunchedPolicy",
    "backtest",
    "hash_uniforms",
    "launch_document",
    "launch_policy",
]
