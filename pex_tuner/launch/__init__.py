"""Launch: a policy artifact with a randomized holdout, deterministic assignment, backtests."""

from pex_tuner.launch.backtest import backtest
from pex_tuner.launch.holdout import LaunchedPolicy, hash_uniforms, launch_policy

__all__ = ["LaunchedPolicy", "backtest", "hash_uniforms", "launch_policy"]
