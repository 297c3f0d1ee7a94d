"""Segment effect estimates: difference in (inverse-propensity weighted) means with a Welch CI."""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = [
    "MOMENTS",
    "SE_FLOOR_RTOL",
    "arm_moments",
    "moment_rows",
    "segment_effect",
    "segment_effect_from_moments",
]

# Floor on the standard error, relative to the larger |mean| of the two arms: sqrt(machine
# epsilon), about 1.5e-8 (see segment_effect).
SE_FLOOR_RTOL = float(np.sqrt(np.finfo(np.float64).eps))


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

    Floor on the standard error. The standard error is at least ``SE_FLOOR_RTOL * max(|m_t|,
    |m_c|)`` (``SE_FLOOR_RTOL = sqrt(eps)``, about 1.5e-8 relative to the arms' means). A
    difference of two float64 means carries rounding error of up to about ``n * eps * |mean|``
    (the weighted sums), so an interval narrower than ``sqrt(eps) * |mean|`` measures the
    arithmetic, not the data: an outcome that is constant within both arms (a constant-effect
    teacher, a deterministic column) gave an "effect" of 4.4e-16 with interval [2.6e-16,
    6.3e-16], flagged significant. With the floor such an effect is within its interval's
    half-width of 0 and never significant, while for any outcome with sampling noise the floor
    is many orders of magnitude below the Welch standard error and changes nothing. (A
    minimum detectable effect in outcome units would need a unit scale the library does not
    know; the floor is relative, so it needs none.)

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
    return _interval(m_t, v_t, n_t, m_c, v_c, n_c, confidence)


def _interval(
    m_t: np.ndarray,
    v_t: np.ndarray,
    n_t: float,
    m_c: np.ndarray,
    v_c: np.ndarray,
    n_c: float,
    confidence: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Effect and Welch interval from the arms' means, mean variances (J,) and Kish n."""
    effect = m_t - m_c
    var = v_t + v_c
    floor = SE_FLOOR_RTOL * np.maximum(np.abs(m_t), np.abs(m_c))
    se = np.where(np.isnan(var), np.nan, np.maximum(np.sqrt(var), floor))
    with np.errstate(divide="ignore", invalid="ignore"):
        df = var**2 / (v_t**2 / max(n_t - 1.0, 1e-12) + v_c**2 / max(n_c - 1.0, 1e-12))
    alpha = 1.0 - confidence
    q = np.where(
        np.isfinite(df) & (df > 0),
        stats.t.ppf(1.0 - alpha / 2.0, np.where(np.isfinite(df) & (df > 0), df, 1.0)),
        stats.norm.ppf(1.0 - alpha / 2.0),
    )
    return effect, effect - q * se, effect + q * se


# ---------------------------------------------------------------------- from sums (at scale)
# rows of arm_moments: count, sum w, sum w^2, then per outcome sum w y, sum w^2 y, sum w^2 y^2
MOMENTS = 3


def moment_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-unit terms of :func:`arm_moments`, shape (n, 3 + 3 J): ``1, w, w^2, w y, w^2 y,
    w^2 y^2`` with ``w = 1 / p``; any set's moments are the sum of its units' rows."""
    w = 1.0 / np.asarray(p, dtype=float)
    w2 = w * w
    y = np.asarray(y, dtype=float)
    cols = [np.ones_like(w)[:, None], w[:, None], w2[:, None]]
    cols += [w[:, None] * y, w2[:, None] * y, w2[:, None] * (y * y)]
    return np.hstack(cols)


def arm_moments(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Additive sufficient statistics of one arm's units in a segment, shape (3 + 3 J,):
    count, sum w, sum w^2, then per outcome sum w y, sum w^2 y, sum w^2 y^2 (``w = 1 / p``).

    Args:
        y: outcomes, shape (n, J); p: propensities, shape (n,).

    The statistics of a union of disjoint sets are the sums of theirs, so segments are
    estimated over partitioned data by adding per-partition moments
    (:func:`segment_effect_from_moments`).
    """
    return moment_rows(y, p).sum(axis=0)


def _mean_var_from_moments(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``_weighted_mean_var`` from :func:`arm_moments` (expanded sums of squares)."""
    J = (len(s) - MOMENTS) // 3
    n, sw, sw2 = float(s[0]), float(s[1]), float(s[2])
    swy, sw2y, sw2yy = (s[MOMENTS + i * J : MOMENTS + (i + 1) * J] for i in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = swy / sw
        n_eff = sw**2 / sw2
    if n < 2:
        return mean, np.full(J, np.nan), n_eff
    ss = np.maximum(sw2yy - 2.0 * mean * sw2y + mean * mean * sw2, 0.0)
    return mean, ss / sw**2 * (n / (n - 1)), n_eff


def segment_effect_from_moments(
    treated: np.ndarray, control: np.ndarray, *, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`segment_effect` from the :func:`arm_moments` of the treated and control units
    (each shape (3 + 3 J,)), summed over partitions.

    The same estimate and interval up to rounding: the variance is expanded as
    ``sum w^2 y^2 - 2 m sum w^2 y + m^2 sum w^2`` instead of summed around the mean, which
    loses about ``|mean| / sd`` times more digits (relative error ~1e-10 for outcomes whose
    mean is 1e5 times their spread).
    """
    m_t, v_t, n_t = _mean_var_from_moments(np.asarray(treated, dtype=float))
    m_c, v_c, n_c = _mean_var_from_moments(np.asarray(control, dtype=float))
    return _interval(m_t, v_t, n_t, m_c, v_c, n_c, confidence)
