"""Segment effect estimates: difference in (inverse-propensity weighted) means with a Welch CI."""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["segment_effect"]


def _weighted_mean_var(y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Hajek mean of each column of ``y`` (n, J), its variance (J,), and Kish's effective n."""
    n = len(y)
    sw = float(w.sum())
    mean = w @ y / sw
    n_eff = sw**2 / float((w**2).sum())
    if n < 2:
        return mean, np.full(y.shape[1], np.nan), n_eff
    var = (w**2) @ (y - mean) ** 2 / sw**2 * (n / (n - 1))
    return mean, var, n_eff


def segment_effect(
    y_treated: np.ndarray,
    p_treated: np.ndarray,
    y_control: np.ndarray,
    p_control: np.ndarray,
    *,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Effect of a treatment in one segment, per outcome, with a two-sided confidence interval.

    The effect is the difference of the inverse-propensity weighted (Hajek) means of treated
    and control units. With a constant propensity per arm (a randomized experiment with fixed
    design probabilities) the weights cancel and this is the plain difference in means, with
    the usual unequal-variance standard error ``sqrt(s_t^2 / n_t + s_c^2 / n_c)``. The interval
    uses Student's t with Welch-Satterthwaite degrees of freedom (Kish effective sample sizes
    under unequal weights); for segments of a few dozen units per arm it is the normal interval.

    Args:
        y_treated: outcomes of the treated units, shape (n_treated, n_outcomes).
        p_treated: their propensities (probability of the arm they got), shape (n_treated,).
        y_control: outcomes of the control units, shape (n_control, n_outcomes).
        p_control: their propensities, shape (n_control,).
        confidence: coverage of the interval, in (0, 1).

    Returns:
        (effect, ci_low, ci_high), each of shape (n_outcomes,); the interval is NaN when an arm
        has fewer than two units.
    """
    m_t, v_t, n_t = _weighted_mean_var(y_treated, 1.0 / p_treated)
    m_c, v_c, n_c = _weighted_mean_var(y_control, 1.0 / p_control)
    effect = m_t - m_c
    var = v_t + v_c
    se = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = var**2 / (v_t**2 / max(n_t - 1.0, 1e-12) + v_c**2 / max(n_c - 1.0, 1e-12))
    alpha = 1.0 - confidence
    q = np.where(
        np.isfinite(df) & (df > 0),
        stats.t.ppf(1.0 - alpha / 2.0, np.where(np.isfinite(df) & (df > 0), df, 1.0)),
        stats.norm.ppf(1.0 - alpha / 2.0),
    )
    return effect, effect - q * se, effect + q * se
