"""Estimating the position-margin elasticity epsilon_XM = -dlog X / dlog M from a time series (Appendix C.3).

Regression (ordinary least squares on log changes, with an intercept)::

    Delta log X_t = a + sum_{j=0}^{L} b_j Delta log M_{t-j} + u_t,      epsilon_XM = -(b_0 + ... + b_L)

where X is the constrained sector's position (or open interest) and M the margin level (any units: only
log changes enter). L = ``distributed_lags`` (default 0) lets positions respond over several days; the
elasticity is then the cumulative response. Standard errors are heteroskedasticity- and
autocorrelation-consistent (Newey and West 1987): Bartlett kernel with the lag rule
``floor(4 (n/100)^(2/9))`` (Newey and West 1994), a small-sample factor n/(n - k), and a two-sided
interval from Student-t quantiles with n - k degrees of freedom. The regression and its covariance are
statsmodels' (``OLS(...).fit(cov_type="HAC")``, :func:`hac_ols`); tests check them against an independent
hand-written Newey-West estimator and White's covariance at lag 0.

The cap is a decreasing function of epsilon (it scales like 1/epsilon, (78)-(81)), so
:meth:`ElasticityEstimate.cap_at_interval` reports the cap at the point estimate and at both ends of the
interval: the upper end of the interval gives the tighter (conservative) cap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from margin_design.display import Displayable
from margin_design.errors import InputError

from ._checks import check_range, to_py
from .cap import calibrate_market
from margin_design.csvio import read_csv_columns, read_table, sort_by_iso_dates

__all__ = [
    "MIN_OBSERVATIONS",
    "newey_west_lags",
    "hac_ols",
    "ElasticityEstimate",
    "estimate_elasticity",
    "read_elasticity_csv",
]

#: Fewest regression observations (after differencing and lags) for which an estimate is reported.
MIN_OBSERVATIONS = 20


def newey_west_lags(n: int) -> int:
    """Bartlett-kernel truncation lag ``floor(4 (n/100)^(2/9))`` (Newey-West 1994 rule of thumb)."""
    return int(math.floor(4.0 * (n / 100.0) ** (2.0 / 9.0)))


def hac_ols(design: np.ndarray, response: np.ndarray, lags: int):
    """OLS of ``response`` on ``design`` with HAC covariance: ``statsmodels`` ``OLS.fit(cov_type="HAC")``.

    Bartlett kernel with weights ``1 - l/(L+1)``, ``L = lags``, and the small-sample factor n/(n - k)
    (``use_correction=True``); ``use_t=True`` so that contrasts get Student-t inference with n - k degrees of
    freedom. Returns the fitted statsmodels results object.
    """
    import statsmodels.api as sm

    return sm.OLS(response, design).fit(cov_type="HAC", cov_kwds={"maxlags": int(lags), "kernel": "bartlett", "use_correction": True}, use_t=True)


@dataclass(frozen=True, repr=False)
class ElasticityEstimate(Displayable):
    """How strongly constrained positions shrink when margin rises, estimated from data (:func:`estimate_elasticity`).

    ``epsilon`` = -(sum of the margin coefficients) (dimensionless); ``std_error`` its HAC standard error;
    ``ci_low``/``ci_high`` the two-sided ``confidence`` interval; ``n_obs`` regression observations;
    ``hac_lags`` the Bartlett truncation lag; ``distributed_lags`` L; ``coefficients`` (intercept, b_0..b_L)
    and their HAC ``covariance``.
    """

    epsilon: float
    std_error: float
    ci_low: float
    ci_high: float
    confidence: float
    n_obs: int
    hac_lags: int
    distributed_lags: int
    coefficients: np.ndarray = field(repr=False)
    covariance: np.ndarray = field(repr=False)

    def cap_at_interval(self, turnover=1.0, participation=0.01, margin=0.05, *, impact_k=None, distortion=None, inventory_penalty=0.0) -> dict:
        """The cap (every unit system, (74)-(80)) at epsilon = estimate, ci_low, ci_high; None where epsilon <= 0.

        ``turnover`` tau, ``participation`` f (decimal of ADV), ``margin`` m (decimal), impact as in
        :func:`~margin_design.calibration.cap.calibrate_market`. A non-positive elasticity means no
        forced-liquidation channel at that end, so the cap is unbounded (reported as None).
        """
        out = {}
        for key, eps in (("estimate", self.epsilon), ("ci_low", self.ci_low), ("ci_high", self.ci_high)):
            if not eps > 0:
                out[key] = None
                continue
            cal = calibrate_market(eps, turnover, participation, margin, impact_k=impact_k, distortion=distortion, inventory_penalty=inventory_penalty)
            out[key] = {"elasticity": eps, "alpha": float(cal.alpha), "c_eff": float(cal.c_eff), "cap": cal.cap().to_dict()}
        return out

    def to_dict(self) -> dict:
        return {
            "epsilon": self.epsilon,
            "std_error": self.std_error,
            "ci": [self.ci_low, self.ci_high],
            "confidence": self.confidence,
            "n_obs": self.n_obs,
            "hac_lags": self.hac_lags,
            "distributed_lags": self.distributed_lags,
            "coefficients": to_py(self.coefficients),
        }

    def summary(self) -> str:
        return (
            f"epsilon_XM = -dlog X/dlog M = {self.epsilon:.4g} (HAC s.e. {self.std_error:.3g}; "
            f"{100 * self.confidence:g}% interval [{self.ci_low:.4g}, {self.ci_high:.4g}]); n = {self.n_obs}, "
            f"Newey-West lags = {self.hac_lags}, distributed lags = {self.distributed_lags}"
        )

    def _display(self) -> tuple[str, list[tuple[str, str]]]:
        return "Elasticity of constrained positions to margin, epsilon_XM = -dlog X/dlog M", [
            ("estimate", f"{self.epsilon:.4g} (HAC s.e. {self.std_error:.3g})"),
            (f"{100 * self.confidence:g}% interval", f"[{self.ci_low:.4g}, {self.ci_high:.4g}]"),
            ("observations", f"{self.n_obs}; Newey-West lags {self.hac_lags}, distributed lags {self.distributed_lags}"),
        ]


def estimate_elasticity(margin, position, *, distributed_lags: int = 0, confidence: float = 0.95, hac_lags: int | None = None) -> ElasticityEstimate:
    """Estimate epsilon_XM from levels of the margin M_t (> 0) and position X_t (> 0), one value per date, in date order.

    See the module docstring for the regression, the HAC standard errors and the interval. Raises
    :class:`~margin_design.errors.InputError` for non-positive levels, fewer than :data:`MIN_OBSERVATIONS`
    observations, or margins that never change.
    """
    m = np.asarray(margin, dtype=float)
    x = np.asarray(position, dtype=float)
    if m.ndim != 1 or x.shape != m.shape:
        raise InputError(f"margin and position must be series of the same length, got {m.shape} and {x.shape}.")
    check_range("margin", m, low=0.0, what="positive (logs are taken)")
    check_range("position", x, low=0.0, what="positive (logs are taken)")
    check_range("confidence", confidence, low=0.0, high=1.0, high_inclusive=False, what="in (0, 1)")
    lags = int(distributed_lags)
    if lags < 0:
        raise InputError(f"distributed_lags must be a non-negative integer, got {distributed_lags}.")
    dm = np.diff(np.log(m))
    dx = np.diff(np.log(x))
    n = dm.size - lags
    k = lags + 2
    if n < max(MIN_OBSERVATIONS, k + 1):
        raise InputError(
            f"the regression needs at least {max(MIN_OBSERVATIONS, k + 1)} observations after differencing and "
            f"{lags} distributed lags, got {max(n, 0)} (from {m.size} dates)."
        )
    cols = [np.ones(n)] + [dm[lags - j : lags - j + n] for j in range(lags + 1)]
    design = np.column_stack(cols)
    y = dx[lags:]
    if not np.any(dm != 0):
        raise InputError("the margin never changes, so the elasticity is not identified.")
    if np.linalg.matrix_rank(design) < k:
        raise InputError("the margin changes are collinear with the intercept or with each other, so the elasticity is not identified.")
    nw = newey_west_lags(n) if hac_lags is None else int(hac_lags)
    if nw < 0:
        raise InputError(f"hac_lags must be a non-negative integer, got {hac_lags}.")
    fit = hac_ols(design, y, nw)
    beta = np.asarray(fit.params, dtype=float)
    cov = np.asarray(fit.cov_params(), dtype=float)
    sel = np.zeros(k)
    sel[1:] = -1.0  # epsilon = -(b_0 + ... + b_L)
    contrast = fit.t_test(sel[None, :])
    eps = float(np.squeeze(contrast.effect))
    se = float(np.squeeze(contrast.sd))
    ci_low, ci_high = (float(v) for v in np.squeeze(contrast.conf_int(alpha=1.0 - confidence)))
    return ElasticityEstimate(
        epsilon=eps,
        std_error=se,
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=float(confidence),
        n_obs=int(n),
        hac_lags=nw,
        distributed_lags=lags,
        coefficients=beta,
        covariance=cov,
    )


def read_elasticity_csv(path: str | Path):
    """Read ``margin`` and ``position`` (or ``open_interest``) columns, optionally ``date`` (ISO YYYY-MM-DD or another
    unambiguous format, see :mod:`margin_design.csvio`; ``margin`` may be written in percent, ``5%``).

    Rows are sorted by date when a date column is present (duplicate dates are an error). Returns
    ``(margin, position, dates_or_None, position_column)``.
    """
    p = Path(path)
    header, _ = read_table(p)
    pos_col = "position" if "position" in header else ("open_interest" if "open_interest" in header else None)
    if pos_col is None:
        raise InputError(f"{p.name} has no column 'position' or 'open_interest' (columns: {', '.join(header)}).")
    cols = read_csv_columns(p, required=("margin", pos_col), dates=("date",))
    m, x = cols["margin"], cols[pos_col]
    check_range(f"column 'margin' of {p.name}", m, low=0.0, what="positive (logs are taken)")
    check_range(f"column {pos_col!r} of {p.name}", x, low=0.0, what="positive (logs are taken)")
    dates = cols.get("date")
    if dates is not None:
        idx = sort_by_iso_dates(dates, f"column 'date' of {p.name}")
        m, x = m[idx], x[idx]
        dates = [dates[i] for i in idx]
    return m, x, dates, pos_col
