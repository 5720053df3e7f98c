"""Numbers quoted in docs/theory.md, each recomputed by a route independent of the code.

Run: ``PYTHONPATH=. python validation/theory_doc_numbers.py [--quick] [--seed S]`` (about
10 s on one core; ``--quick`` uses 4x fewer Monte-Carlo draws). Prints one line per check
(value, reference, PASS/FAIL) and exits 1 if any check fails. Each check names the section
of docs/theory.md that quotes the number. Monte-Carlo checks pass within 4 standard errors;
deterministic ones within the stated relative tolerance. Everything runs on the CPU
(``--device`` is accepted for uniformity with the other scripts and ignored).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from scipy import integrate, stats

RESULTS: list[bool] = []
SCALE = 1  # Monte-Carlo size divisor (4 with --quick)
SEED = 0


def check(name: str, value: float, ref: float, rtol: float = 0.0, atol: float = 0.0) -> None:
    ok = bool(abs(value - ref) <= atol + rtol * abs(ref))
    RESULTS.append(ok)
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {value:.12g} (reference {ref:.12g})")


def sec5_constants() -> None:
    from rmthess.theory import asymptotic_constants
    from rmthess.theory.asymptotics import hidden_ce_K, output_ce_K

    ce_h = asymptotic_constants("hidden-ce", 0.5, 8)
    ce_o = asymptotic_constants("output-ce", 0.5, 8)

    K1, K2 = hidden_ce_K(8)
    K3, K4 = output_ce_K(8)
    for n, v, r in [
        ("K1(8)", K1, 0.0110849540608),
        ("K2(8)", K2, 0.00156711426096),
        ("K3(8)", K3, 5.73158012146),
        ("K4(8)", K4, 10.5089121893),
    ]:
        check(f"sec 5 {n} quoted", v, r, rtol=1e-11)
    check("sec 5 gamma K1 + K2 (m=8, gamma=0.5)", ce_h.A_off, 0.0071095913, rtol=1e-8)
    check("sec 5 hidden-ce A_diag = (g/2+1/4)/m^2", ce_h.A_diag, 0.5 / 64, rtol=1e-15)
    check("sec 5 output-ce A_diag = K3", ce_o.A_diag, K3, rtol=0)

    # K1 independently: one-coordinate factors by scipy quadrature.
    m = 8
    c = 1 / math.sqrt(2 * math.pi)
    # E[e^{h^2/m} 1[g>0]] and E[e^{h^2/m}(1/m + h^2/m^2) 1[g>0]] (exponents combined)
    a0 = integrate.quad(lambda x: c * math.exp(x * x * (1 / m - 0.5)), 0, np.inf)[0]
    a1 = integrate.quad(
        lambda x: c * math.exp(x * x * (1 / m - 0.5)) * (1 / m + x * x / m**2), 0, np.inf
    )[0]
    check("sec 5 K1 by 1-D quadrature", (0.5 + a0) ** (m - 2) * a1**2, K1, rtol=1e-9)

    # K2: coordinates factorize; 2-D quadrature over the positive quadrant.
    def q2(t, poly):
        """E[poly(g, g') e^{t g g'} 1[g>0] 1[g'>0]] for independent standard g, g'."""
        return integrate.dblquad(
            lambda y, x: poly(x, y) * math.exp(t * x * y - 0.5 * (x * x + y * y)) / (2 * math.pi),
            0,
            60,
            0,
            60,
            epsabs=1e-14,
        )[0]

    b0 = 0.75 + q2(1 / m, lambda x, y: 1.0)  # E e^{h h'/m}
    b1 = q2(1 / m, lambda x, y: 1 / m + x * y / m**2)
    check("sec 5 K2 by 2-D quadrature", b0 ** (m - 2) * b1**2, K2, rtol=1e-8)

    # K3, K4 = (phi^m)''(t) with phi, phi', phi'' by 2-D quadrature.
    for t, ref, name in [(1 / m, K3, "K3"), (2 / m, K4, "K4")]:
        f0 = 0.75 + q2(t, lambda x, y: 1.0)
        f1 = q2(t, lambda x, y: x * y)
        f2 = q2(t, lambda x, y: (x * y) ** 2)
        val = m * f0 ** (m - 1) * f2 + m * (m - 1) * f0 ** (m - 2) * f1**2
        check(f"sec 5 {name} by 2-D quadrature", val, ref, rtol=1e-8)


def sec4_fixed_C() -> None:
    from rmthess.theory import frobenius_limits

    g = 0.5
    # linear-ce against plain Monte Carlo of the softmax moments (C = 10, 2e6 draws).
    rng = np.random.default_rng([SEED, 1])
    z = rng.standard_normal((2_000_000 // SCALE, 10))
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    lim = frobenius_limits("linear-ce", 10, g)
    for name, a, ref in [
        ("F_diag", p[:, 0] * (1 - p[:, 0]), lim.F_diag),
        ("F_off", p[:, 0] * p[:, 1], lim.F_off),
    ]:
        est = g * np.mean(a**2) + np.mean(a) ** 2
        se = np.std(g * a**2 + 2 * np.mean(a) * a) / math.sqrt(a.size)  # delta method
        check(f"sec 4 linear-ce {name}(C=10) vs MC (se {se:.1e})", ref, est, atol=4 * se)
    two = frobenius_limits("linear-ce", 2, g)
    check("sec 4 linear-ce C=2: F_diag = F_off", two.F_diag, two.F_off, rtol=1e-12)
    # sigmoid route at C = 2: p1 = sigmoid(z1 - z2), z1 - z2 ~ N(0, 2)
    s = integrate.quad(
        lambda u: (1 / (1 + math.exp(-u)) / (1 + math.exp(u))) ** 2 * stats.norm.pdf(u, 0, 2**0.5),
        -60,
        60,
    )[0]
    s1 = integrate.quad(
        lambda u: 1 / (1 + math.exp(-u)) / (1 + math.exp(u)) * stats.norm.pdf(u, 0, 2**0.5),
        -60,
        60,
    )[0]
    check("sec 4 linear-ce C=2 by 1-D sigmoid quadrature", two.F_diag, g * s + s1**2, rtol=1e-10)
    # output-mse: ||E h h^T||^2 with E h^2 = 1/2, E h = 1/sqrt(2 pi), by direct sum
    m = 8
    M = np.full((m, m), 1 / (2 * math.pi))
    np.fill_diagonal(M, 0.5)
    check(
        "sec 4 output-mse F_diag",
        frobenius_limits("output-mse", 10, g, 8).F_diag,
        (M**2).sum(),
        1e-14,
    )
    # hidden-mse: r^2 = (gamma + 1/4) / (2 (C + 2) (gamma + 1/2)), free of m
    for C, m_, gg in [(8, 4, 1.7), (100, 8, 0.5), (1000, 3, 0.1)]:
        r = frobenius_limits("hidden-mse", C, gg, m_).ratio
        ref = math.sqrt((gg + 0.25) / (2 * (C + 2) * (gg + 0.5)))
        check(f"sec 4 hidden-mse r(C={C}, m={m_}) closed form", r, ref, 1e-14)
    # hidden-mse: E|v|^4 = (C/m)^2 (1 + 2/C), E (v_j.v_l)^2 = C/m^2 by Monte Carlo
    C, m_ = 6, 4
    V = rng.standard_normal((400_000 // SCALE, C, 2)) / math.sqrt(m_)
    for name, x, ref in [
        ("E|v_j|^4", (V[:, :, 0] ** 2).sum(1) ** 2, (C / m_) ** 2 * (1 + 2 / C)),
        ("E(v_j.v_l)^2", (V[:, :, 0] * V[:, :, 1]).sum(1) ** 2, C / m_**2),
    ]:
        se = x.std(ddof=1) / math.sqrt(x.size)
        check(f"sec 4 {name} (MC, se {se:.1e})", x.mean(), ref, atol=4 * se)


def sec4_large_C_approach() -> None:
    from rmthess.theory import frobenius_limits

    g, e = 0.5, math.e
    for C, ref in [(100, None), (1000, None), (10**7, 1.0)]:
        lim = frobenius_limits("linear-ce", C, g)
        rd = C**2 * lim.F_diag / (1 + e * g)
        ro = C**4 * lim.F_off / (1 + e * e * g)
        print(
            f"info  sec 5 linear-ce C={C}: C^2 F_diag/(1+e g) = {rd:.4f}, "
            f"C^4 F_off/(1+e^2 g) = {ro:.4f}"
        )
        if ref is not None:
            check(f"sec 5 linear-ce C={C} C^2 F_diag -> 1 + e gamma", rd, ref, rtol=1e-5)
            check(f"sec 5 linear-ce C={C} C^4 F_off -> 1 + e^2 gamma", ro, ref, rtol=1e-5)
    # local slopes of log r (finite-C curvature, sec 6)
    Cs = np.array([8, 16, 32, 64, 128, 256])
    r = np.array([frobenius_limits("linear-ce", int(c), g).ratio for c in Cs])
    slope = np.polyfit(np.log(Cs), np.log(r), 1)[0]
    print(f"info  sec 6 linear-ce exact OLS slope of log r over C = 8..256: {slope:.4f}")
    check("sec 6 linear-ce exact slope C=8..256 near -0.98", slope, -0.979, atol=0.005)
    hm = np.polyfit(np.log(Cs), np.log(1 / np.sqrt(Cs + 2.0)), 1)[0]
    check("sec 6 hidden-mse exact slope C=8..256 near -0.47", hm, -0.471, atol=0.005)


def sec6_finite_size() -> None:
    # E (1/d)||H||^2 = gamma E a^2 (1 + 2/d) + (1 - 1/N)(E a)^2, a independent of x
    rng = np.random.default_rng([SEED, 2])
    d, N, T = 10, 25, 40_000 // SCALE
    vals = np.empty(T)
    for t in range(T):
        X = rng.standard_normal((d, N))
        a = rng.uniform(-0.5, 1.5, N)  # E a = 0.5, E a^2 = 7/12
        H = (X * a) @ X.T / N
        vals[t] = (H**2).sum() / d
    Ea, Ea2 = 0.5, (1.5**3 + 0.5**3) / 6.0
    pred = d / N * Ea2 * (1 + 2 / d) + (1 - 1 / N) * Ea**2
    se = vals.std(ddof=1) / math.sqrt(T)
    check(f"sec 6 finite-size formula (MC, se {se:.1e})", vals.mean(), pred, atol=4 * se)
    # output blocks: E||(1/N) sum a h h^T||^2 = F + (E[a^2|h|^4] - F)/N; a = 1, h = relu(g)
    m, N, T = 4, 20, 40_000 // SCALE
    h = np.maximum(rng.standard_normal((T, N, m)), 0.0)
    Hm = np.einsum("tni,tnj->tij", h, h) / N
    v = (Hm**2).sum((1, 2))
    F = m / 4 + m * (m - 1) / (4 * math.pi**2)
    Eh4 = 1.5 * m + m * (m - 1) / 4  # E|h|^4 = m E h^4 + m(m-1) (E h^2)^2
    se = v.std(ddof=1) / math.sqrt(T)
    check(f"sec 6 output O(1/N) bias (MC, se {se:.1e})", v.mean(), F + (Eh4 - F) / N, atol=4 * se)
    u4 = ((h**2).sum(2) ** 2).sum(1)
    vu = (v * N * N - u4) / (N * (N - 1))
    se = vu.std(ddof=1) / math.sqrt(T)
    check("sec 6 U-statistic unbiased for F", vu.mean(), F, atol=4 * se)


def sec3_gmp() -> None:
    from rmthess.theory import GMPLaw
    from rmthess.theory.gmp import gmp_density, gmp_support, gmp_zero_mass

    g = 0.3
    x = np.array([0.5, 1.0, 1.5])
    lo, hi = (1 - g**0.5) ** 2, (1 + g**0.5) ** 2
    mp_pdf = np.sqrt((hi - x) * (x - lo)) / (2 * math.pi * g * x)
    got = gmp_density(x, [1.0], [1.0], g)
    check("sec 3 MP density (max abs err)", float(np.max(np.abs(got - mp_pdf))), 0.0, atol=1e-12)
    sup = gmp_support([1.0], [1.0], g)
    check("sec 3 MP lower edge", sup[0][0], lo, rtol=1e-12)
    check("sec 3 MP upper edge", sup[-1][1], hi, rtol=1e-12)
    check("sec 3 MP zero mass at gamma=2", gmp_zero_mass([1.0], [1.0], 2.0), 0.5, atol=1e-15)
    # signed law: M1, M2 by quadrature of the density (+ atom at 0 contributes nothing)
    atoms, w = np.array([-0.4, 0.0, 0.7, 1.3]), np.array([0.2, 0.3, 0.3, 0.2])
    law = GMPLaw(atoms, w, 1.4)
    m1, m2 = float(w @ atoms), float(w @ atoms**2)
    num1 = sum(
        integrate.quad(lambda t: t * law.pdf(t), a, b, limit=200)[0] for a, b in law.support()
    )
    num2 = sum(
        integrate.quad(lambda t: t * t * law.pdf(t), a, b, limit=200)[0] for a, b in law.support()
    )
    check("sec 3 M1 = E tau (density quadrature)", num1, m1, rtol=1e-7)
    check(
        "sec 3 M2 = g E tau^2 + (E tau)^2 (density quadrature)", num2, 1.4 * m2 + m1**2, rtol=1e-7
    )
    check(
        "sec 3 zero mass max(0, 1 - (1 - nu{0})/g)",
        law.zero_mass,
        1 - 0.7 / 1.4,
        atol=1e-15,
    )
    # gamma -> 0: point mass at E tau (variance gamma E tau^2 -> 0), not nu
    small = GMPLaw(atoms, w, 1e-6)
    check("sec 3 gamma->0: mean = E tau", small.mean(), m1, rtol=1e-12)
    check("sec 3 gamma->0: var = gamma E tau^2", small.var(), 1e-6 * m2, rtol=1e-9)
    s = small.support()
    check("sec 3 gamma->0: support width -> 0", s[-1][1] - s[0][0], 0.0, atol=1e-2)


def sec2_hessian() -> None:
    import torch

    from rmthess.simulate.hessian import autograd_hessian, hessian_parts
    from rmthess.simulate.sampling import sample_instance

    torch.set_num_threads(1)
    C, d, m, N = 4, 5, 3, 11
    inst = sample_instance("hidden", C, d, N, m, seed=3, device="cpu")
    for loss in ("ce", "mse"):
        parts = hessian_parts(loss, inst, seed=5)
        H = autograd_hessian("hidden", loss, inst, seed=5)
        err = float((parts.full() - H).abs().max() / H.abs().max())
        check(f"sec 2 full Hessian ({loss}) vs torch.func.hessian", err, 0.0, atol=1e-12)
        res = parts.wv_residual.view(m, d, C, m)
        mask = torch.zeros(m, 1, 1, m, dtype=torch.bool)
        mask[range(m), 0, 0, range(m)] = True
        off = float(res.masked_fill(mask, 0.0).abs().max())
        check(f"sec 2 residual part only in column b = j ({loss})", off, 0.0, atol=0.0)
    # within-layer zero blocks of linear-mse / output-mse are exact zeros
    Hl = autograd_hessian("linear", "mse", sample_instance("linear", 3, 4, 7, seed=1, device="cpu"))
    off = Hl.view(3, 4, 3, 4)[0, :, 1, :].abs().max()
    check("sec 2 linear-mse off block exactly 0", float(off), 0.0, atol=0.0)


def main(argv=None) -> int:
    global SCALE, SEED
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import parser

    args = parser(__doc__).parse_args(argv)
    SCALE, SEED = (4 if args.quick else 1), args.seed
    sec2_hessian()
    sec3_gmp()
    sec4_fixed_C()
    sec4_large_C_approach()
    sec5_constants()
    sec6_finite_size()
    n_fail = RESULTS.count(False)
    print(f"{len(RESULTS) - n_fail}/{len(RESULTS)} checks passed")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
