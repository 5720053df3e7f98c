"""GMP solver benchmark: wall time and accuracy of the density vs mpmath and vs eigvalsh.

``rmthess bench solver [--json]`` solves the GMP density of a block weight law ``nu``
(default: linear-ce diagonal block, C = 10, 1000 quasi-Monte-Carlo atoms, gamma = 0.5) on a
grid of 1000 points covering the support, and reports

* ``solver``: wall time (median of ``--repeat`` runs after a JIT warm-up) and max error
  against the reference;
* ``reference``: the same law solved in mpmath (``--ref-dps`` digits) by Newton at
  ``z = x + 1e-30 i`` on ``--n-ref`` evenly spaced grid points plus the grid points on both
  sides of every support edge. Any root with ``Im s > 0`` at ``Im z > 0`` is
  *the* solution (uniqueness on C+), so the reference is certified by ``Im s > 0`` and a
  residual below ``10^-(dps-5)``; its distance to the ``eta = 0`` boundary value is
  ``O(1e-30 / sqrt(distance to an edge))``;
* ``eigvalsh``: the alternative a user would otherwise use: sample ``H = (1/N) X diag(a) X^T``
  with ``a ~ nu`` at the largest ``d`` whose sampling + ``numpy.linalg.eigvalsh`` +
  histogram fits in the solver's wall time, and the error of the histogram density at the
  same points (plus one larger ``d`` for scale).
"""

from __future__ import annotations

import json
import time

from rmthess._cli import add_json

_DEFAULTS = dict(case="linear-ce", block="diag", C=10, gamma=0.5, n_atoms=1000, n_grid=1000)


def add_arguments(parser) -> None:
    from rmthess._checks import number_arg

    def pos_int(name, minimum=1):
        return number_arg("int", name=name, minimum=minimum)

    add_json(parser, "one JSON object")
    parser.add_argument("--case", default=_DEFAULTS["case"], help="first-layer case of nu")
    parser.add_argument("--block", default=_DEFAULTS["block"], help="diag or off")
    parser.add_argument(
        "--C", type=pos_int("C", 2), default=_DEFAULTS["C"], help="number of classes"
    )
    parser.add_argument("--m", type=pos_int("m"), default=None, help="hidden width (hidden cases)")
    parser.add_argument(
        "--gamma", type=number_arg("float", name="gamma"), default=_DEFAULTS["gamma"], help="d/N"
    )
    parser.add_argument(
        "--n-atoms", type=pos_int("n_atoms"), default=_DEFAULTS["n_atoms"], help="atoms of nu"
    )
    parser.add_argument(
        "--n-grid", type=pos_int("n_grid"), default=_DEFAULTS["n_grid"], help="grid points"
    )
    parser.add_argument(
        "--n-ref", type=pos_int("n_ref"), default=80, help="mpmath reference points"
    )
    parser.add_argument(
        "--ref-dps", type=pos_int("ref_dps"), default=30, help="mpmath decimal digits"
    )
    parser.add_argument("--repeat", type=pos_int("repeat"), default=5, help="timed solver runs")
    parser.add_argument(
        "--big-d", type=pos_int("big_d", 0), default=2000, help="larger eigvalsh d for scale"
    )
    parser.add_argument(
        "--seed", type=pos_int("seed", 0), default=0, help="seed (QMC atoms, eigvalsh sample)"
    )


# ----------------------------------------------------------------------------- reference
def mpmath_reference(x, atoms, weights, gamma, s0, dps=30, eta=1e-30):
    """Certified high-precision ``s(x + i eta)`` by Newton in mpmath, started from ``s0``.

    Returns (s as complex ndarray, max residual). Raises RuntimeError if a point fails the
    certificate (``Im s > 0`` and residual ``< 10^-(dps-5)``)."""
    import mpmath as mp
    import numpy as np

    mp.mp.dps = dps
    taus = [mp.mpf(float(a)) for a in atoms]
    ws = [mp.mpf(float(w)) for w in weights]
    g = mp.mpf(gamma)
    out = np.empty(len(x), dtype=complex)
    worst = 0.0
    tol = mp.mpf(10) ** (-(dps - 5))
    for i, (xi, si) in enumerate(zip(x, s0, strict=True)):
        z = mp.mpc(float(xi), eta)
        # start off the axis: the certificate does not depend on the start
        s = mp.mpc(float(si.real), max(float(si.imag), 1e-3 * abs(si)))
        for _ in range(200):
            acc = mp.mpc(0)
            dacc = mp.mpc(0)
            for t, w in zip(taus, ws, strict=True):
                r = 1 / (1 + g * t * s)
                acc += w * t * r
                dacc += w * t * t * r * r
            F = -1 / s + acc - z
            dF = 1 / (s * s) - g * dacc
            step = F / dF
            snew = s - step
            k = 0
            while snew.imag <= 0 and k < 200:
                step /= 2
                snew = s - step
                k += 1
            s = snew
            if abs(F) < tol and abs(step) < tol * abs(s):
                break
        res = float(abs(F))
        if not (s.imag > 0 and abs(F) < tol):
            raise RuntimeError(f"mpmath reference not certified at x = {xi}: residual {res}")
        worst = max(worst, res)
        out[i] = complex(s)
    return out, worst


# ----------------------------------------------------------------------------- eigvalsh
def eigvalsh_density(atoms, weights, gamma, d, x, seed=0):
    """Histogram density of the eigenvalues of one sampled ``H = (1/N) X diag(a) X^T``,
    ``N = round(d/gamma)``, evaluated at ``x``. Returns (density, wall_s, bins)."""
    import numpy as np

    from rmthess._random import rng as _rng

    t0 = time.perf_counter()
    rng = _rng(seed)  # numpy.random.default_rng(seed)
    N = max(1, round(d / gamma))
    a = rng.choice(atoms, size=N, p=weights)
    X = rng.standard_normal((d, N))
    H = (X * a) @ X.T / N
    ev = np.linalg.eigvalsh(H)
    bins = max(8, int(round(2 * d ** (1 / 3))))  # ~ optimal bin count for a smooth density
    hist, edges = np.histogram(ev, bins=bins, density=True)
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    dens = np.where((x >= edges[0]) & (x <= edges[-1]), hist[idx], 0.0)
    return dens, time.perf_counter() - t0, bins


# ----------------------------------------------------------------------------- driver
def run_bench(
    case="linear-ce",
    block="diag",
    C=10,
    m=None,
    gamma=0.5,
    n_atoms=1000,
    n_grid=1000,
    n_ref=40,
    ref_dps=30,
    repeat=5,
    big_d=2000,
    seed=0,
) -> dict:
    """Run the benchmark and return the result dictionary (see module docstring).

    Parameters
    ----------
    case, block, C, m : the block weight law ``nu`` (:func:`rmthess.theory.block_laws.
        block_weight_law`; a first-layer case, ``m`` for hidden cases).
    gamma : float > 0, ``d/N``.
    n_atoms : int >= 1, QMC atoms of ``nu``; n_grid : int >= 2, solver grid points (the
        support padded by 5% each side).
    n_ref : int >= 1, evenly spaced mpmath reference points (plus those around every edge);
        ref_dps : int in [20, 200], mpmath digits.
    repeat : int >= 1, timed solver runs (median reported); big_d : int >= 0, one extra
        eigvalsh run at this ``d`` (0: none); seed : int >= 0.

    Returns
    -------
    dict, JSON-serializable; its ``"units"`` entry says what each number is. Raises
    ValueError for bad input and for a law with no density (``nu = delta_0``).
    """
    import numba
    import numpy as np

    from rmthess._checks import check_int
    from rmthess.theory.block_laws import block_weight_law
    from rmthess.theory.gmp import gmp_density, gmp_stieltjes, gmp_support, gmp_zero_mass

    n_grid = check_int("n_grid", n_grid, 2)
    n_ref = check_int("n_ref", n_ref, 1)
    ref_dps = check_int("ref_dps", ref_dps, 20, 200)
    repeat = check_int("repeat", repeat, 1)
    big_d = check_int("big_d", big_d, 0)
    atoms, weights = block_weight_law(case, block, C, gamma, m, n_atoms=n_atoms, seed=seed)
    sup = gmp_support(atoms, weights, gamma)
    if not sup:
        raise ValueError(
            f"the limiting law of case {case!r} block {block!r} at gamma={gamma:g} has no "
            "density to benchmark (nu = delta_0, or a support narrower than round-off); "
            "choose a case/block with a nonzero weight (gamma in 1e-12..1e12)"
        )
    lo, hi = sup[0][0], sup[-1][1]
    pad = 0.05 * (hi - lo)
    x = np.linspace(lo - pad, hi + pad, n_grid)

    gmp_density(x, atoms, weights, gamma)  # JIT warm-up (numba cache=True)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        rho = gmp_density(x, atoms, weights, gamma)
        times.append(time.perf_counter() - t0)
    wall = float(np.median(times))
    s64, flags = gmp_stieltjes(x + 0j, atoms, weights, gamma, return_flags=True)

    # evenly spaced reference points plus the grid points on both sides of every edge
    edges = np.array([e for iv in sup for e in iv])
    near = np.searchsorted(x, edges)
    near = np.concatenate([near - 1, near])
    near = near[(near >= 0) & (near < n_grid)]
    ref_idx = np.unique(
        np.concatenate([np.linspace(0, n_grid - 1, n_ref).round().astype(int), near])
    )
    t0 = time.perf_counter()
    s_ref, resid = mpmath_reference(x[ref_idx], atoms, weights, gamma, s64[ref_idx], dps=ref_dps)
    ref_wall = time.perf_counter() - t0
    rho_ref = s_ref.imag / np.pi
    err = np.abs(rho[ref_idx] - rho_ref)
    # interior: reference points farther than 5% of the support width from every edge
    xr = x[ref_idx]
    interior = np.min(np.abs(xr[:, None] - edges[None, :]), axis=1) > 0.05 * (hi - lo)
    rho_max = float(rho.max())

    # eigvalsh at equal wall time: largest d (doubling, then bisection) within `wall`
    def eig_at(d):  # best of 3 (the machine is shared: timings are noisy)
        runs = [eigvalsh_density(atoms, weights, gamma, d, x[ref_idx], seed=seed) for _ in "abc"]
        return min(runs, key=lambda r: r[1])

    eig_at(64)  # warm-up (BLAS threads)
    d_ok, res_ok = 16, eig_at(16)
    d = 32
    while d <= 8192:
        res = eig_at(d)
        if res[1] > wall:
            break
        d_ok, res_ok = d, res
        d *= 2
    lo_d, hi_d = d_ok, d
    while hi_d - lo_d > max(8, lo_d // 16):
        mid = (lo_d + hi_d) // 2
        res = eig_at(mid)
        if res[1] <= wall:
            lo_d, res_ok = mid, res
        else:
            hi_d = mid
    d_ok = lo_d
    eig = {
        "d": int(d_ok),
        "N": int(max(1, round(d_ok / gamma))),
        "wall_s": float(res_ok[1]),
        "bins": int(res_ok[2]),
        "max_abs_err": float(np.max(np.abs(res_ok[0] - rho_ref))),
        "max_abs_err_interior": float(np.max(np.abs(res_ok[0] - rho_ref)[interior])),
    }
    big = None
    if big_d:
        dens, tb, bins = eigvalsh_density(atoms, weights, gamma, big_d, x[ref_idx], seed=seed)
        big = {
            "d": big_d,
            "N": int(max(1, round(big_d / gamma))),
            "wall_s": float(tb),
            "bins": int(bins),
            "max_abs_err": float(np.max(np.abs(dens - rho_ref))),
            "max_abs_err_interior": float(np.max(np.abs(dens - rho_ref)[interior])),
        }
    return {
        "law": {
            "case": case,
            "block": block,
            "C": C,
            "m": m,
            "gamma": gamma,
            "n_atoms": int(np.asarray(atoms).size),
            "atoms": f"scrambled-Sobol QMC draws of the block weight (seed {seed})",
            "support": sup,
            "zero_mass": gmp_zero_mass(atoms, weights, gamma),
            "max_density": rho_max,
        },
        "grid": {"n": n_grid, "lo": float(x[0]), "hi": float(x[-1])},
        "threads": numba.get_num_threads(),
        "solver": {
            "wall_s": wall,
            "wall_s_runs": [float(t) for t in times],
            "max_abs_err": float(err.max()),
            "max_abs_err_interior": float(err[interior].max()),
            "max_rel_err": float(err.max() / rho_max),
            "uncertified_points": int(np.sum(flags == 2)),
            "ladder_points": int(np.sum(flags == 1)),
        },
        "reference": {
            "method": "mpmath Newton at z = x + 1e-30 i, certified by Im s > 0 (unique C+ root)"
            " and residual < 10^-(dps-5)",
            "dps": ref_dps,
            "n_points": int(ref_idx.size),
            "n_interior": int(interior.sum()),
            "max_residual": resid,
            "wall_s": ref_wall,
        },
        "eigvalsh_equal_time": eig,
        "eigvalsh_large": big,
        "goal": {"wall_s": 0.2, "max_abs_err": 1e-8},
        "units": {
            "wall_s": "seconds of wall-clock time (numba JIT warm-up excluded)",
            "max_abs_err": "max |rho - rho_ref| over the reference points, in density units "
            "(1 / eigenvalue units); rho_ref = Im s_ref / pi from the mpmath reference",
            "max_abs_err_interior": "the same over reference points farther than 5% of the "
            "support width from every edge",
            "max_rel_err": "max_abs_err / law.max_density",
            "nu": "solver, reference and eigvalsh all use the same discrete n_atoms-atom law "
            "nu; the quasi-Monte-Carlo error of nu itself is not part of these errors",
            "uncertified_points": "grid points where the eta = 0 root could not be certified "
            "(small-eta value returned instead)",
            "ladder_points": "grid points solved by the eta-continuation fallback",
            "eigvalsh": "histogram density of one sampled d x d block H = (1/N) X diag(a) X^T, "
            "a ~ nu, N = round(d/gamma); equal_time = largest d whose sampling + eigvalsh + "
            "histogram takes no longer than the solver",
        },
    }


def _table(r: dict) -> str:
    law, s, ref, e, b = (
        r["law"],
        r["solver"],
        r["reference"],
        r["eigvalsh_equal_time"],
        r["eigvalsh_large"],
    )
    lines = [
        f"GMP solver benchmark: {law['case']} {law['block']}, C={law['C']}, "
        f"gamma={law['gamma']}, {law['n_atoms']} atoms, {r['grid']['n']} grid points, "
        f"{r['threads']} numba threads",
        f"reference: {ref['method']}; {ref['n_points']} points, dps={ref['dps']}, "
        f"{ref['wall_s']:.1f} s",
        f"{'method':<34}{'wall [s]':>10}{'max |err|':>12}{'interior':>12}",
    ]
    rows = [("GMP solver (median of runs)", s)]
    rows.append(("eigvalsh d=" + str(e["d"]) + " (equal time)", e))
    if b:
        rows.append(("eigvalsh d=" + str(b["d"]), b))
    for label, v in rows:
        lines.append(
            f"{label:<34}{v['wall_s']:>10.4f}{v['max_abs_err']:>12.2e}"
            f"{v['max_abs_err_interior']:>12.2e}"
        )
    lines.append(
        f"(max density {law['max_density']:.3g}; interior = reference points > 5% of the "
        "support width from an edge; goal: < 0.2 s and 1e-8)"
    )
    return "\n".join(lines)


_RUN_ARGS = (
    "case", "block", "C", "m", "gamma", "n_atoms", "n_grid", "n_ref", "ref_dps", "repeat",
    "big_d", "seed",
)  # fmt: skip


def run(args) -> int:
    r = run_bench(**{name: getattr(args, name) for name in _RUN_ARGS})
    print(json.dumps(r, indent=2) if args.json else _table(r))
    return 0
