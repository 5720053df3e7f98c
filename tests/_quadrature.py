"""Independent adaptive quadrature shared by the solver tests (no rmthess code)."""

import numpy as np


def adaptive_gauss(intervals, f, tol=1e-12, nodes=10):
    """Independent quadrature of f over the support intervals: x = a + (b-a) sin^2(t/2),
    t in [0, pi] (smooth at square-root edges), adaptive Gauss-Legendre: a panel is split
    until its rule and the rule on its two halves agree to tol (vectorized per level)."""
    xg, wg = np.polynomial.legendre.leggauss(nodes)

    def rule(a, b, lo, hi):  # arrays of panels -> integral per panel
        mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
        t = mid[:, None] + half[:, None] * xg[None, :]
        x = a[:, None] + (b - a)[:, None] * np.sin(t / 2) ** 2
        jac = 0.5 * (b - a)[:, None] * np.sin(t)
        return (half[:, None] * wg[None, :] * f(x) * jac).sum(1)

    ab = np.array(intervals, float).reshape(-1, 2)
    k = 16
    a = np.repeat(ab[:, 0], k)
    b = np.repeat(ab[:, 1], k)
    lo = np.tile(np.arange(k) * np.pi / k, len(ab))
    hi = lo + np.pi / k
    total = 0.0
    for _ in range(40):
        if lo.size == 0:
            break
        whole = rule(a, b, lo, hi)
        mid = 0.5 * (lo + hi)
        halves = rule(a, b, lo, mid) + rule(a, b, mid, hi)
        ok = (np.abs(whole - halves) <= tol) | (hi - lo < 1e-12)
        total += halves[ok].sum()
        a, b, lo, hi, mid = a[~ok], b[~ok], lo[~ok], hi[~ok], mid[~ok]
        a, b = np.concatenate([a, a]), np.concatenate([b, b])
        lo, hi = np.concatenate([lo, mid]), np.concatenate([mid, hi])
    assert lo.size == 0, "adaptive quadrature did not converge"
    return total
