"""OPE estimators as sufficient statistics.

Every estimator is written as a per-(unit, arm) statistic matrix ``R[i, k, :]``, the
contribution unit i makes if the policy assigns it arm k, plus a finalizer that turns the sums
of R over the units a policy sends to each arm into value, standard error and lift vs
assign-all-control. The batched kernel (:mod:`pex_tuner.ope.kernel`) and the explicit-assignment
path share these definitions, so both give the same numbers.

Estimators (Y_i observed outcome, W_i logged arm, p_i its propensity, A_i the policy's arm,
mu the outcome model):

* ``ips``: mean of 1{W_i = A_i} Y_i / p_i (the seed's eq. 2).
* ``snips``: self-normalized IPS, sum w_i Y_i / sum w_i with w_i = 1{W_i = A_i} / p_i; standard
  error by the delta method.
* ``dm``: direct method, mean of mu(x_i, A_i). Its standard error reflects sampling of units
  only, not the outcome model's own error: treat it as optimistic.
* ``dr``: doubly robust, mean of mu(x_i, A_i) + 1{W_i = A_i} (Y_i - mu(x_i, W_i)) / p_i.

Lifts are paired: the per-unit difference between the policy's score and the
assign-all-control score on the same units, so their standard error accounts for the
correlation between the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pex_tuner.errors import ConfigurationError

__all__ = [
    "ESTIMATORS",
    "Estimator",
    "components",
    "finalize",
    "make_estimator",
    "residual_parts",
    "statistics",
]

ESTIMATORS = ("dr", "ips", "snips", "dm")


@dataclass(frozen=True)
class Estimator:
    """Statistics of one estimator for one experiment.

    Attributes:
        name: estimator name.
        n_stats: number of statistic columns M.
        shift: per-outcome centring constant c, shape (n_outcomes,), subtracted from scores
            before squaring so that variances do not suffer cancellation.
        control_sums: sums over all units of the assign-all-control statistics needed by the
            finalizer; for the mean-type estimators the evaluation loop fills them in from
            ``control_score_sums`` (zeros until then).
    """

    name: str
    n_stats: int
    shift: np.ndarray
    control_sums: np.ndarray


def _residual(
    name: str, Y: np.ndarray, W: np.ndarray, p: np.ndarray, mu: np.ndarray | None
) -> np.ndarray:
    """What a unit adds to the score of its logged arm, shape (n, J): the importance-weighted
    residual (DR), the weighted outcome (IPS) or nothing (DM)."""
    n, J = Y.shape
    if name == "dm":
        return np.zeros((n, J))
    if name == "ips":
        return Y / p[:, None]
    return (Y - mu[np.arange(n), W, :]) / p[:, None]


def _scores(
    name: str,
    Y: np.ndarray,
    W: np.ndarray,
    p: np.ndarray,
    mu: np.ndarray | None,
    K: int,
    shift: np.ndarray,
) -> np.ndarray:
    """Per-(unit, arm) centred scores S - shift of shape (n, K, J), mean-type estimators."""
    n, J = Y.shape
    S = np.zeros((n, K, J)) if name == "ips" else np.array(mu, dtype=np.float64, copy=True)
    S -= shift
    if name != "dm":
        S[np.arange(n), W, :] += _residual(name, Y, W, p, mu)
    return S


def make_estimator(
    name: str, Y: np.ndarray, W: np.ndarray, p: np.ndarray, mu: np.ndarray | None, K: int
) -> Estimator:
    """Prepare an estimator: its centring shift and the control policy's sums over all units.

    Args:
        Y: outcomes, shape (n, J). W: logged arm index, shape (n,). p: propensity, shape (n,).
        mu: outcome model, shape (n, K, J), or None (IPS / SNIPS only).
    """
    if name not in ESTIMATORS:
        raise ConfigurationError(
            f"The 'estimator' parameter must be one of {list(ESTIMATORS)}. Got {name!r} instead."
        )
    if name in ("dm", "dr") and mu is None:
        raise ConfigurationError(
            f"estimator '{name}' needs outcome-model predictions: pass "
            "predictions=fit_effects(...).predict(data)"
        )
    n, J = Y.shape
    if name == "snips":
        shift = Y.mean(axis=0)
        # control sums: sum w_c, sum w_c y, sum w_c^2, sum w_c^2 y, sum w_c^2 y^2 (y shifted)
        wc = (W == 0) / p
        yc = Y - shift
        cs = np.concatenate(
            [
                [wc.sum()],
                (wc[:, None] * yc).sum(axis=0),
                [(wc**2).sum()],
                ((wc**2)[:, None] * yc).sum(axis=0),
                ((wc**2)[:, None] * yc**2).sum(axis=0),
            ]
        )
        return Estimator(name=name, n_stats=2 + 3 * J, shift=shift, control_sums=cs)
    # mean-type estimators: any constant works as the centring shift; the control arm's
    # outcome (model) mean is close to every policy's value and cheap to compute. The control
    # policy's sums are accumulated chunk by chunk (see ``control_score_sums``).
    if n == 0:
        shift = np.zeros(J)
    elif name == "ips":
        shift = Y.mean(axis=0)
    else:
        shift = mu[:, 0, :].mean(axis=0)
    return Estimator(name=name, n_stats=3 * J, shift=shift, control_sums=np.zeros(2 * J))


def control_score_sums(g: np.ndarray) -> np.ndarray:
    """[sum g, sum g**2] over a chunk of centred control scores g of shape (n, J)."""
    return np.concatenate([g.sum(axis=0), (g * g).sum(axis=0)])


def components(
    est: Estimator, Y: np.ndarray, W: np.ndarray, p: np.ndarray, mu: np.ndarray | None, K: int
) -> tuple[np.ndarray, np.ndarray]:
    """The two arrays every statistic is built from, for a chunk of units.

    Mean-type estimators (dr, ips, dm): (S of shape (n, K, J), the centred per-arm score, and
    g of shape (n, J), the centred control score ``S[:, 0, :]``).
    SNIPS: (w of shape (n, K), the importance weight 1{W = k} / p, and y of shape (n, J), the
    centred outcomes).
    """
    if est.name == "snips":
        w = (W[:, None] == np.arange(K)[None, :]) / p[:, None]
        return np.ascontiguousarray(w, dtype=np.float64), np.ascontiguousarray(Y - est.shift)
    S = _scores(est.name, Y, W, p, mu, K, shift=est.shift)
    return S, np.ascontiguousarray(S[:, 0, :])


def residual_parts(
    est: Estimator, Y: np.ndarray, W: np.ndarray, p: np.ndarray, mu: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """What the fused kernel needs besides mu, for the mean-type estimators.

    The centred score of arm k is ``S[i, k] = (mu[i, k] - c) + 1{W_i = k} r[i]`` (mu taken as 0
    for IPS), so the kernel can build it on the fly instead of materializing (n, K, J).

    Returns:
        (r of shape (n, J): the importance-weighted residual (DR), outcome (IPS) or 0 (DM);
        g of shape (n, J): the centred control score ``S[:, 0, :]``).
    """
    n, J = Y.shape
    r = _residual(est.name, Y, W, p, mu)
    base = -est.shift if mu is None or est.name == "ips" else mu[:, 0, :] - est.shift
    g = np.broadcast_to(base, (n, J)) + np.where((W == 0)[:, None], r, 0.0)
    return np.ascontiguousarray(r), np.ascontiguousarray(g)


def statistics(
    est: Estimator, Y: np.ndarray, W: np.ndarray, p: np.ndarray, mu: np.ndarray | None, K: int
) -> np.ndarray:
    """The statistic matrix R for a chunk of units, shape (n_chunk, K, M), float64.

    Mean-type: R = [S, S**2, S * g]. SNIPS: R = [w, w y, w**2, w**2 y, w**2 y**2].
    """
    n, J = Y.shape
    a, b = components(est, Y, W, p, mu, K)
    R = np.empty((n, K, est.n_stats))
    if est.name == "snips":
        w, y = a, b
        w2 = w**2
        R[:, :, 0] = w
        R[:, :, 1 : 1 + J] = w[:, :, None] * y[:, None, :]
        R[:, :, 1 + J] = w2
        R[:, :, 2 + J : 2 + 2 * J] = w2[:, :, None] * y[:, None, :]
        R[:, :, 2 + 2 * J :] = w2[:, :, None] * (y**2)[:, None, :]
        return R
    S, g = a, b
    R[:, :, :J] = S
    R[:, :, J : 2 * J] = S * S
    R[:, :, 2 * J :] = S * g[:, None, :]
    return R


def finalize(
    est: Estimator, sums: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Value, its standard error, lift vs control and its standard error.

    Args:
        sums: statistic sums per policy and arm, shape (P, K, M).
        n: number of units.

    Returns:
        (value, se, lift, lift_se), each of shape (P, J).
    """
    _P, _K, _M = sums.shape
    J = est.shift.shape[0]
    tot = sums.sum(axis=1)  # (P, M)
    dof = max(n - 1, 1)
    if est.name == "snips":
        sw, swy = tot[:, :1], tot[:, 1 : 1 + J]
        sw2, sw2y, sw2y2 = tot[:, 1 + J : 2 + J], tot[:, 2 + J : 2 + 2 * J], tot[:, 2 + 2 * J :]
        cs = est.control_sums
        cw, cwy, cw2, cw2y, cw2y2 = (
            cs[0],
            cs[1 : 1 + J],
            cs[1 + J],
            cs[2 + J : 2 + 2 * J],
            cs[2 + 2 * J :],
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            v = swy / sw  # shifted value, (P, J)
            vc = cwy / cw
            wbar, wcbar = sw / n, cw / n
            # sum of squared influence terms phi_i = w_i (y_i - v) / wbar
            sphi2 = (sw2y2 - 2 * v * sw2y + v**2 * sw2) / wbar**2
            sphic2 = (cw2y2 - 2 * vc * cw2y + vc**2 * cw2) / wcbar**2
            # cross terms only where the policy picks control and the unit was in control
            x0 = sums[:, 0, :]
            e2, e1, e0 = x0[:, 1 + J : 2 + J], x0[:, 2 + J : 2 + 2 * J], x0[:, 2 + 2 * J :]
            scross = (e0 - (v + vc) * e1 + v * vc * e2) / (wbar * wcbar)
            se = np.sqrt(np.maximum(sphi2, 0.0)) / n
            lift_se = np.sqrt(np.maximum(sphi2 - 2 * scross + sphic2, 0.0)) / n
        value = v + est.shift
        lift = v - vc
        return value, se, lift, lift_se
    s1, s2, s3 = tot[:, :J], tot[:, J : 2 * J], tot[:, 2 * J :]
    c1, c2 = est.control_sums[:J], est.control_sums[J:]
    mean = s1 / n
    var = np.maximum(s2 - n * mean**2, 0.0) / dof
    value = mean + est.shift
    se = np.sqrt(var / n)
    lift = (s1 - c1) / n
    d2 = s2 - 2 * s3 + c2
    var_d = np.maximum(d2 - n * lift**2, 0.0) / dof
    lift_se = np.sqrt(var_d / n)
    return value, se, lift, lift_se
