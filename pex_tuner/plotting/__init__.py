"""Figures (plotly). Leaf package: functions take results and return figures."""

from pex_tuner.plotting.ope import plot_policy_values

__all__ = ["plot_policy_values"]
