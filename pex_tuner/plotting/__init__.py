"""Figures (plotly). Leaf package: functions take results and return figures."""

from pex_tuner.plotting.backtest import plot_backtest
from pex_tuner.plotting.online import plot_calibration, plot_online_trials
from pex_tuner.plotting.ope import plot_policy_values
from pex_tuner.plotting.pareto import (
    plot_front_comparison,
    plot_hypervolume,
    plot_pareto_front,
    write_report,
)
from pex_tuner.plotting.segments import plot_segments
from pex_tuner.plotting.styles import format_p_value, verdict

__all__ = [
    "format_p_value",
    "plot_backtest",
    "plot_calibration",
    "plot_front_comparison",
    "plot_hypervolume",
    "plot_online_trials",
    "plot_pareto_front",
    "plot_policy_values",
    "plot_segments",
    "verdict",
    "write_report",
]
