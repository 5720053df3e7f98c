"""Each case's theory with its case: one small object per Hessian case (scipy.stats' one
class per distribution).

The public functions of the theory layer (:func:`rmthess.theory.frobenius_limits`,
:func:`rmthess.theory.asymptotic_constants`, :func:`rmthess.theory.block_weight_law`,
:func:`rmthess.theory.output_block_limit`, :func:`rmthess.theory.hidden_integrals.estimated_cost`)
validate their arguments and then ask the case's :class:`_CaseTheory` for the numbers
(scipy's public-checks / private-compute split). :data:`THEORY` holds one object per entry
of :data:`rmthess.cases.REGISTRY`, keyed by the case name; :func:`theory_for` looks one up.
A new case is one entry of the registry and one subclass here.

The formulas are those of the modules' docstrings (docs/theory.md sections 4, 5 and 3):
linear-mse and output-mse exact, linear-ce by quadrature, hidden-mse in closed form,
hidden-ce and output-ce by nested Monte Carlo at fixed C and by the constants ``K1..K4``
as ``C -> infinity``. The helpers the methods use (quadratures, QMC draws, Monte-Carlo
kernels) stay in their modules and are imported when a method runs.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from scipy.special import softmax

from rmthess.cases import REGISTRY, Case, get_case

__all__ = ["KURTOSIS", "THEORY", "theory_for"]

KURTOSIS = {"normal": 3.0, "uniform": 9.0 / 5.0}
"""``E v^4 / (E v^2)^2`` of a weight entry, by entry law (:attr:`rmthess.inits.Init.dist`)."""

_LOG_FLOAT_MAX = math.log(sys.float_info.max)
_INF = math.inf


class _CaseTheory:
    """The theory of one case. Arguments reach the methods validated (by the public
    functions); every method returns plain numbers or arrays.

    Methods
    -------
    frobenius(C, gamma, m, ini, samples=, inner=, seed=, progress=) -> dict
        Fields of :class:`rmthess.theory.FrobeniusLimits` beyond ``case, C, gamma, m,
        method, init``.
    asymptotic(gamma, m, ini) -> (A_diag, p_diag, A_off, p_off)
    weight_law(block, C, m, V, n_atoms, seed, ini, act=None) -> (atoms, weights)
        The law of the block weight (first-layer cases only); ``act`` an
        :class:`rmthess.activations.Activation` other than ReLU (hidden-*), None for ReLU.
    output_block(block, C, m, V, n_samples, seed, ini, act=None) -> array (m, m)
        The limiting output-layer block (output-* only), ``act`` as above.
    qmc_bytes(C, n, m) -> float
        Peak bytes of ``n`` quasi-Monte-Carlo draws (cases with ``uses_qmc``).
    mc_cost(C, m, n_V, n_g, B) -> (seconds, elements); mc_flops_per_V(C, m, n_g) -> float
        Cost model of the Monte-Carlo kernels (:mod:`rmthess.theory.hidden_integrals`).
    """

    name: str = ""
    uses_qmc: bool = False
    """The weight law (or output block) is an integral over QMC draws."""
    asymptotic_normal_only: bool = False
    """The large-C constants are derived for a normal init only."""
    diverges: str = ""
    """Which large-C constant diverges below the registry's ``asymptotic_m_min``."""

    def __init__(self, case: Case):
        self.case = case

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.case.name!r})"

    def frobenius(self, C, gamma, m, ini, *, samples, inner, seed, progress) -> dict:
        raise NotImplementedError

    def quadrature(self, C, gamma, m, ini, tol) -> dict:
        """The deterministic route of a case with a Monte-Carlo route (normal init)."""
        raise NotImplementedError(f"case {self.case.name!r} has no Gram quadrature")

    def asymptotic(self, gamma, m, ini) -> tuple[float, float, float, float]:
        raise NotImplementedError

    def weight_law(self, block, C, m, V, n_atoms, seed, ini, act=None):
        raise ValueError(f"case {self.case.name!r} has no GMP weight law")

    def output_block(self, block, C, m, V, n_samples, seed, ini, act=None):
        raise ValueError(f"case {self.case.name!r} has no output-layer block limit")

    def qmc_bytes(self, C: int, n: int, m: int | None = None) -> float:
        return 0.0

    def mc_cost(self, C: float, m: float, n_V: float, n_g: float, B: float) -> tuple[float, float]:
        """Predicted ``(seconds, float64 elements alive)`` of one Monte-Carlo run (floats
        in; the Monte-Carlo cases only)."""
        raise NotImplementedError(f"case {self.case.name!r} has no Monte-Carlo kernel")

    def mc_flops_per_V(self, C: int, m: int, n_g: int) -> float:
        """Floating-point operations per V draw of one Monte-Carlo run (the Monte-Carlo
        cases only)."""
        raise NotImplementedError(f"case {self.case.name!r} has no Monte-Carlo kernel")


def _exact(F_diag, F_off, ratio=None) -> dict:
    if ratio is None:
        ratio = math.sqrt(F_off / F_diag) if F_off > 0 else 0.0
    return dict(F_diag=F_diag, F_off=F_off, ratio=ratio, ratio_se=0.0)


def _quadrature_record(Fd, Fo, err_d, err_o) -> dict:
    """Fields of a Gram-quadrature result: the error estimates in the ``*_se`` fields and
    the bound ``ratio (err_o/F_off + err_d/F_diag) / 2`` on ``ratio``."""
    ratio = math.sqrt(Fo / Fd)
    ratio_err = 0.5 * ratio * (err_o / Fo + err_d / Fd)
    return dict(
        F_diag=Fd, F_off=Fo, ratio=ratio, ratio_se=ratio_err, F_diag_se=err_d, F_off_se=err_o
    )


def _V(V, C, m, seed, ini):
    from rmthess.theory.block_laws import _check_V, sample_V

    return sample_V(C, m, seed, init=ini) if V is None else _check_V(V, C, m)


def _activation_law(loss, block, C, m, V, n_atoms, seed, ini, act):
    """Weight law of a hidden block for an activation other than ReLU: ``n_atoms``
    scrambled-Sobol draws of ``(g, y)`` (dimension ``m + 1``: ``g ~ N(0, sigma^2 I_m)`` and a
    uniform label from the last coordinate) through
    :func:`rmthess.theory.activation_hidden.activation_weights` (signed atoms: the
    ``phi''`` term of the diagonal blocks)."""
    from scipy.special import ndtr

    from rmthess.theory.activation_hidden import activation_weights
    from rmthess.theory.block_laws import _gaussian_qmc

    z = _gaussian_qmc(n_atoms, m + 1, seed)
    g = z[:, :m] * ini.sigma
    y = np.minimum((ndtr(z[:, m]) * C).astype(np.int64), C - 1)
    cols = np.array([0 if block == "diag" else 1])
    a = activation_weights(g, y, V, loss, act, np.array([0]), cols)[:, 0]
    return a, np.full(n_atoms, 1.0 / n_atoms)


def _qmc_hidden_bytes(C, n, m) -> float:
    """Draws of ``g`` (n x m) and the softmax over ``V h`` (n x C)."""
    return 8.0 * (6.0 * n * m + 3.0 * n * C + 6.0 * n)


# --------------------------------------------------------------------------- linear model
class _LinearMSE(_CaseTheory):
    name = "linear-mse"

    def frobenius(self, C, gamma, m, ini, **_):
        return _exact(1.0 + gamma, 0.0, 0.0)

    def asymptotic(self, gamma, m, ini):
        return (1.0 + gamma, 0.0, 0.0, _INF)

    def weight_law(self, block, C, m, V, n_atoms, seed, ini, act=None):
        return np.array([1.0 if block == "diag" else 0.0]), np.array([1.0])


class _LinearCE(_CaseTheory):
    name = "linear-ce"
    uses_qmc = True

    def frobenius(self, C, gamma, m, ini, **_):
        from rmthess.theory.softmax_moments import SIGMA_MAX, linear_ce_frobenius

        if ini.sigma > SIGMA_MAX:
            raise ValueError(
                f"init sigma must be <= {SIGMA_MAX:g} for linear-ce (the quadrature tables "
                f"grow like sigma^2 and the softmax is one-hot beyond), got {ini.name!r}"
            )
        Fd, Fo = (float(x) for x in linear_ce_frobenius(C, gamma, sigma=ini.sigma))
        return _exact(Fd, Fo)

    def asymptotic(self, gamma, m, ini):
        # p_k ~ e^{z_k - sigma^2/2} / C; e^{2 sigma^2} beyond the float64 range is refused
        # by the caller (non-finite constants)
        ex = math.inf if ini.sigma2 > 354 else math.exp(ini.sigma2)  # math.e for LeCun
        return (1.0 + ex * gamma, 2.0, 1.0 + ex * ex * gamma, 4.0)

    def weight_law(self, block, C, m, V, n_atoms, seed, ini, act=None):
        from rmthess.theory.block_laws import _ce_weight, _gaussian_qmc, _scaled

        a = _ce_weight(softmax(_scaled(_gaussian_qmc(n_atoms, C, seed), ini), axis=-1), block)
        return a, np.full(n_atoms, 1.0 / n_atoms)

    def qmc_bytes(self, C, n, m=None):
        return 8.0 * (6.0 * n * C + 4.0 * n)


# --------------------------------------------------------------------------- hidden layer
class _HiddenMSE(_CaseTheory):
    name = "hidden-mse"

    def frobenius(self, C, gamma, m, ini, **_):
        """Exact limits for V entries of variance ``s2 = sigma^2/m``, kurtosis kappa.

        ``F(V) = |v_j|^4 (gamma/2 + 1/4)`` (diag), ``(v_j . v_l)^2 (gamma/4 + 1/16)``
        (off): the ReLU indicators are Bernoulli(1/2) / (1/4) whatever sigma. ``E|v_j|^4 =
        C E v^4 + C(C-1) s2^2 = s2^2 C^2 (1 + (kappa - 1)/C)`` and ``E (v_j . v_l)^2 =
        C s2^2``. ``F_diag`` grows like ``sigma^4 gamma C^2``: it is checked against the
        float64 range in log space, and the ratio comes from its overflow-free closed form.
        """
        k1 = KURTOSIS[ini.dist] - 1.0
        log_s4 = 4.0 * math.log(ini.sigma)
        log_unit = log_s4 + 2 * (math.log(C) - math.log(m)) + math.log1p(k1 / C)
        if log_unit + math.log(gamma / 2 + 0.25) >= _LOG_FLOAT_MAX:
            g_max = 2 * math.exp(_LOG_FLOAT_MAX - log_unit) - 0.5
            raise ValueError(
                f"gamma must be <= {g_max:.3g} for hidden-mse at C={C}, m={m}, init={ini}: "
                f"F_diag = sigma^4 (C/m)^2 (1 + (kappa-1)/C)(gamma/2 + 1/4) exceeds the "
                f"float64 range, got {gamma!r}"
            )
        Fd = math.exp(log_unit) * (gamma / 2 + 0.25)
        Fo = math.exp(log_s4 + math.log(C) - 2 * math.log(m)) * (gamma / 4 + 1 / 16)
        r = math.sqrt((gamma / 4 + 1 / 16) / (gamma / 2 + 0.25) / (C + k1))
        return _exact(Fd, Fo, r)

    def asymptotic(self, gamma, m, ini):
        s4, fm = ini.sigma2**2, float(m)
        return (s4 * (gamma / 2 + 0.25) / fm / fm, -2.0, s4 * (gamma / 4 + 1 / 16) / fm / fm, -1.0)

    def weight_law(self, block, C, m, V, n_atoms, seed, ini, act=None):
        V = _V(V, C, m, seed, ini)
        if act is not None:
            return _activation_law(self.case.loss, block, C, m, V, n_atoms, seed, ini, act)
        l = 0 if block == "diag" else 1
        c = float(V[:, 0] @ V[:, l])
        q = 0.5 if block == "diag" else 0.25
        return np.array([0.0, c]), np.array([1.0 - q, q])


class _MonteCarlo(_CaseTheory):
    """Cases whose fixed-C limits are nested Monte-Carlo integrals over V and g
    (:mod:`rmthess.theory.hidden_integrals`)."""

    uses_qmc = True
    asymptotic_normal_only = True
    kernel = ""
    """Name of the Monte-Carlo function of :mod:`rmthess.theory.hidden_integrals`."""

    def frobenius(self, C, gamma, m, ini, *, samples, inner, seed, progress):
        from threadpoolctl import threadpool_limits

        from rmthess._checks import check_int
        from rmthess._stats import ratio_stderr
        from rmthess.theory import hidden_integrals as hi
        from rmthess.theory.frobenius import MC_MAX_C, MIN_SAMPLES, PROGRESS_AFTER_S

        case = self.case.name
        if C > MC_MAX_C:
            raise ValueError(
                f"C must be <= {MC_MAX_C} for the Monte-Carlo case {case!r} (got {C}); "
                "use rmthess.theory.asymptotic_constants for larger C"
            )
        if samples is not None:
            samples = check_int("samples", samples)
            if samples < MIN_SAMPLES:
                raise ValueError(
                    f"samples must be an integer >= {MIN_SAMPLES}, got {samples}: with fewer "
                    "V draws the standard error is too noisy to be trusted (measured: the "
                    f"ratio spreads up to 1.3x its reported SE below {MIN_SAMPLES} draws; "
                    "MIN_SAMPLES)"
                )
        if inner is not None:
            inner = check_int("inner", inner, 2)
        n_V, n_g = hi.default_sizes(case, C, m, samples, inner)
        hi.check_memory(
            lambda C, m, samples, inner: hi.estimated_cost(case, C, m, samples, inner)[1],
            {"C": C, "m": m, "samples": n_V, "inner": n_g},
            {"C": 2, "m": self.case.m_min, "samples": MIN_SAMPLES, "inner": 2},
            f"the Monte-Carlo case {case!r}",
        )
        show = progress
        if show is None:
            show = hi.estimated_cost(case, C, m, n_V, n_g)[0] > PROGRESS_AFTER_S
        with threadpool_limits(limits=1, user_api="blas"):
            est = getattr(hi, self.kernel)(C, m, n_V, n_g, seed, progress=show, init=ini)
        hi.warn_heavy_tails(est, case, C, m, gamma, ini.sigma)  # MonteCarloTailWarning
        s, Fd, Fo, sd, so, cov = est.scaled_summary(gamma)
        ratio = math.sqrt(Fo / Fd) if Fo > 0 else 0.0  # scale-free: on F/s, no overflow
        ratio_se = ratio_stderr(Fd, Fo, sd**2, so**2, cov)
        Fd, Fo, sd, so = (x * s for x in (Fd, Fo, sd, so))
        if not (math.isfinite(Fd) and math.isfinite(Fo)):
            raise ValueError(
                f"gamma must be smaller for {case} at C={C}, m={m}: the limit exceeds the "
                f"float64 range, got {gamma!r}"
            )
        return dict(
            F_diag=Fd, F_off=Fo, ratio=ratio, ratio_se=ratio_se, F_diag_se=sd, F_off_se=so,
            n_samples=n_V, n_inner=n_g, seed=seed,
        )  # fmt: skip


class _HiddenCE(_MonteCarlo):
    name = "hidden-ce"
    kernel = "hidden_ce_mc"
    diverges = "K1(m) = E[e^(|h|^2/m) ...] diverges for smaller m"

    def mc_cost(self, C, m, n_V, n_g, B):
        from rmthess.theory.hidden_integrals import _CHUNK_ELEMS

        sec = n_V * n_g * (4.5e-8 * m * m + 1e-9 * C * m * m * C / (C + 2000) + 1e-9 * C)
        chunk = min(n_g, max(1.0, _CHUNK_ELEMS // max(1.0, B * max(C, m * m))))
        elems = B * (C * m * m + (C + 2 * n_g) * m + 2 * m * m)
        elems += B * chunk * (6 * m * m + 4 * C + 4 * m)
        return sec, elems

    def mc_flops_per_V(self, C, m, n_g):
        return 2.0 * n_g * C * m * m + 10.0 * n_g * C

    def asymptotic(self, gamma, m, ini):
        from rmthess.theory.asymptotics import hidden_ce_K

        K1, K2 = hidden_ce_K(m, ini.sigma)
        s4, fm = ini.sigma2**2, float(m)
        return (s4 * (gamma / 2 + 0.25) / fm / fm, 0.0, gamma * K1 + K2, 1.0)

    def quadrature(self, C, gamma, m, ini, tol):
        import warnings

        from rmthess.theory.hidden_quadrature import hidden_ce_quadrature

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            q = hidden_ce_quadrature(C, gamma, m, ini.sigma, tol)
        for w in caught:  # re-issued at the caller of frobenius_limits
            warnings.warn(str(w.message), w.category, stacklevel=4)
        return _quadrature_record(q["F_diag"], q["F_off"], q["F_diag_err"], q["F_off_err"])

    def weight_law(self, block, C, m, V, n_atoms, seed, ini, act=None):
        from rmthess.theory.block_laws import _gaussian_qmc, _scaled

        V = _V(V, C, m, seed, ini)
        if act is not None:
            return _activation_law(self.case.loss, block, C, m, V, n_atoms, seed, ini, act)
        l = 0 if block == "diag" else 1
        g = _scaled(_gaussian_qmc(n_atoms, m, seed), ini)
        h = np.maximum(g, 0.0)
        p = softmax(h @ V.T, axis=-1)  # (n, C)
        v0, vl = V[:, 0], V[:, l]
        a = p @ (v0 * vl) - (p @ v0) * (p @ vl)
        a = np.where((g[:, 0] > 0) & (g[:, l] > 0), a, 0.0)
        return a, np.full(n_atoms, 1.0 / n_atoms)

    def qmc_bytes(self, C, n, m=None):
        return _qmc_hidden_bytes(C, n, m)


# --------------------------------------------------------------------------- output layer
class _OutputMSE(_CaseTheory):
    name = "output-mse"

    def frobenius(self, C, gamma, m, ini, **_):
        sig2 = ini.sigma2
        Fd = sig2 * sig2 * (m / 4 + m * (m - 1) / (4 * math.pi**2))
        if not math.isfinite(Fd):
            raise ValueError(f"init sigma is too large for output-mse: F_diag overflows, got {ini}")
        return _exact(Fd, 0.0, 0.0)

    def asymptotic(self, gamma, m, ini):
        s4, fm = ini.sigma2**2, float(m)
        return (s4 * (fm / 4 + fm * (fm - 1) / (4 * math.pi**2)), 0.0, 0.0, _INF)

    def output_block(self, block, C, m, V, n_samples, seed, ini, act=None):
        if block == "off":
            return np.zeros((m, m))
        if act is not None:  # E[phi(g) phi(g)^T]: M_2 on the diagonal, M_1^2 off it
            M1 = act.gaussian_moment("phi", 1, ini.sigma)
            M2 = act.gaussian_moment("phi", 2, ini.sigma)
            return np.full((m, m), M1 * M1) + (M2 - M1 * M1) * np.eye(m)
        M = np.full((m, m), 1.0 / (2.0 * np.pi)) + (0.5 - 1.0 / (2.0 * np.pi)) * np.eye(m)
        return M if ini.sigma == 1.0 else ini.sigma2 * M


class _OutputCE(_MonteCarlo):
    name = "output-ce"
    kernel = "output_ce_mc"
    diverges = "K4(m) = E[e^(2 h.h'/m) (h.h')^2] diverges for smaller m"

    def quadrature(self, C, gamma, m, ini, tol):
        import warnings

        from rmthess.theory.ce_quadrature import output_ce_quadrature

        q = output_ce_quadrature(C, m, ini.sigma, tol)
        if not q.converged:
            warnings.warn(
                f"output-ce quadrature at C={C}, m={m}: the finest resolution reached a "
                f"relative change of {max(q.F_diag_err / q.F_diag, q.F_off_err / q.F_off):.2g}, "
                f"above tol={tol:g}; the error estimates (F_diag_se, F_off_se) say how far",
                RuntimeWarning,
                stacklevel=4,
            )
        return _quadrature_record(q.F_diag, q.F_off, q.F_diag_err, q.F_off_err)

    def mc_cost(self, C, m, n_V, n_g, B):
        sec = n_V * (7e-10 * n_g * n_g * C + 3e-8 * n_g * n_g + 1e-9 * n_g * C * m)
        elems = B * (C * m + 2 * n_g * m + 6 * n_g * C + 6 * n_g * n_g)
        return sec, elems

    def mc_flops_per_V(self, C, m, n_g):
        return 6.0 * n_g * n_g * C + 10.0 * n_g * C

    def asymptotic(self, gamma, m, ini):
        from rmthess.theory.asymptotics import output_ce_K

        K3, K4 = output_ce_K(m, ini.sigma)
        return (K3, 2.0, K4, 4.0)

    def output_block(self, block, C, m, V, n_samples, seed, ini, act=None):
        from rmthess.theory.block_laws import _ce_weight, _gaussian_qmc, _scaled

        V = _V(V, C, m, seed, ini)
        phi = (lambda x: np.maximum(x, 0.0)) if act is None else act.phi
        h = phi(_scaled(_gaussian_qmc(n_samples, m, seed), ini))
        a = _ce_weight(softmax(h @ V.T, axis=-1), block)
        return (h * a[:, None]).T @ h / n_samples

    def qmc_bytes(self, C, n, m=None):
        return _qmc_hidden_bytes(C, n, m)


_CLASSES = {
    cls.name: cls for cls in (_LinearMSE, _LinearCE, _HiddenMSE, _HiddenCE, _OutputMSE, _OutputCE)
}
THEORY: dict[str, _CaseTheory] = {name: _CLASSES[name](c) for name, c in REGISTRY.items()}
"""The theory object of every case of :data:`rmthess.cases.REGISTRY`, keyed by its name."""


def theory_for(case) -> _CaseTheory:
    """The :class:`_CaseTheory` of ``case`` (a name or a :class:`rmthess.cases.Case`).

    >>> theory_for("hidden-ce").case.theory_method
    'quadrature'
    """
    return THEORY[get_case(case).name]
