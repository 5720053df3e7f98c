"""Whole-layer density benchmark: exact reduction vs generic matrix solver vs eigvalsh.

``rmthess bench layer [--json]`` measures, in one run, the limiting spectral density of the
whole first-layer Hessian of linear-ce (``C d x C d``; default C = 10, gamma = 0.5, 1000
scrambled-Sobol softmax atoms) on a grid of 1000 points covering the support (padded 5%):

1. **Exact reduction** (:func:`rmthess.theory.layer_laws.layer_law`): the layer law is
   ``delta_0 / C + (1 - 1/C) GMP(nu')`` with ``nu'`` the ``n_atoms (C - 1)`` nonzero
   eigenvalues of the softmax Hessians, solved by the scalar GMP solver. Timed: law
   construction, support, density on the grid, and (separately) the cdf on the grid; median
   of ``--repeat`` runs after a JIT warm-up. **Solver error** (same atoms): against
   mpmath (certified Newton at ``z = x + 1e-30 i``, :func:`rmthess.bench.solver.
   mpmath_reference`) at ``--n-mp`` points, and against a Richardson-extrapolated eta-ladder
   re-solve ``2 s(x + i eta) - s(x + 2 i eta)`` (``eta = 1e-9 max|tau|``, error
   ``O(eta^2 |s''|)``) at all grid points farther than 2% of the support width from an
   edge. **Discretisation error**: the same law with ``--ref-atoms`` (default 2^16) atoms
   as the reference density (with intermediate sizes to show the convergence).
2. **Generic route** (:func:`rmthess.theory.matrix_gmp.matrix_gmp_stieltjes` on the SAME
   ``n_atoms`` ``C x C`` atoms): a window of ``--n-matrix`` consecutive grid points from the
   middle of the support (continuation as on the full grid); time per continued point
   ``(T_window - T_1)/(n - 1)`` and the extrapolation ``T_1 + 999 x that`` to the whole grid
   (an extrapolation, not a measurement). Its difference to route 1 measures the
   non-exchangeability of the finite draws (the reduction is exact only for a
   permutation-invariant law); its solver error: Richardson eta-ladder re-solves (a
   different path of the same solver) at ``--n-ladder`` of the window's points.
3. **Simulation at equal wall time**: the largest ``d`` (``N = d/gamma``) whose sampling +
   ``eigvalsh`` of the real ``C d x C d`` layer Hessian
   (:func:`rmthess.simulate.layer.layer_eigenvalues`) + histogram takes no longer than
   route 1's density (construction included), and the same for 10x that budget. Histogram
   of the eigenvalues without the ``d`` exact zeros (``1 (x) v`` is in the kernel),
   ``max(8, 2 n^(1/3))`` bins; its error against the reference law's bin averages (cdf
   differences) in the same bins, L1 (mass units) and Linf (density units), and the same
   errors of route 1's bin averages: the ratio is taken within the run.

Threads: ``--threads`` (default 1) for numba, BLAS (threadpoolctl) and torch.
"""

from __future__ import annotations

import json
import statistics
import time

from rmthess._cli import add_json

_EDGE_FRAC = 0.02  # Richardson check: points farther than this fraction of the width from edges


def add_arguments(parser) -> None:
    from rmthess._checks import number_arg

    def pos_int(name, minimum=1):
        return number_arg("int", name=name, minimum=minimum)

    add_json(parser, "one JSON object")
    parser.add_argument("--C", type=pos_int("C", 2), default=10, help="number of classes")
    parser.add_argument("--gamma", type=number_arg("float", name="gamma"), default=0.5, help="d/N")
    parser.add_argument("--n-atoms", type=pos_int("n_atoms"), default=1000, help="softmax atoms")
    parser.add_argument("--n-grid", type=pos_int("n_grid", 2), default=1000, help="grid points")
    parser.add_argument(
        "--ref-atoms", type=pos_int("ref_atoms"), default=2**16, help="atoms of the reference"
    )
    parser.add_argument("--n-mp", type=pos_int("n_mp"), default=12, help="mpmath points")
    parser.add_argument("--mp-dps", type=pos_int("mp_dps", 20), default=25, help="mpmath digits")
    parser.add_argument(
        "--n-matrix", type=pos_int("n_matrix", 2), default=40, help="generic-solver window"
    )
    parser.add_argument(
        "--n-ladder", type=pos_int("n_ladder"), default=5, help="generic-solver ladder checks"
    )
    parser.add_argument("--repeat", type=pos_int("repeat"), default=3, help="timed repeats")
    parser.add_argument("--threads", type=pos_int("threads"), default=1, help="numba/BLAS/torch")
    parser.add_argument("--max-d", type=pos_int("max_d", 8), default=4096, help="largest sim d")
    parser.add_argument("--seed", type=pos_int("seed", 0), default=0, help="atoms / sim seed")


def _threads():
    import numba
    import torch
    from threadpoolctl import threadpool_info

    blas = sorted({i["num_threads"] for i in threadpool_info()})
    return {"numba": numba.get_num_threads(), "blas": blas, "torch": torch.get_num_threads()}


def _median_time(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def _richardson(stieltjes, x, eta):
    """``2 s(x + i eta) - s(x + 2 i eta)``: the eta = 0 boundary value to O(eta^2 s'')."""
    return 2.0 * stieltjes(x + 1j * eta) - stieltjes(x + 2j * eta)


def _cont_cdf(law, b):
    """Cdf of the continuous part (the atom at 0 removed) at the bin edges ``b``."""
    return law.cdf(b) - law.zero_mass * (b >= 0)


def _bin_errors(dens, ref, width):
    import numpy as np

    diff = np.abs(dens - ref)
    return {"l1": float(np.sum(diff * width)), "linf": float(diff.max())}


def _sim_density(C, d, gamma, edges, seed):
    """Sampled whole-layer eigenvalues -> histogram density (layer units) in ``edges``."""
    import numpy as np

    from rmthess.simulate.layer import layer_eigenvalues

    N = max(1, round(d / gamma))
    ev = layer_eigenvalues("linear-ce", C, d, N, seed=seed, device="cpu").eigenvalues[0]
    counts, _ = np.histogram(ev[d:], bins=edges)  # the d smallest are the exact kernel
    return counts / (ev.size * np.diff(edges))


def _sim_at(C, d, gamma, lo, hi, seed, repeat):
    import numpy as np

    bins = max(8, int(round(2 * ((C - 1) * d) ** (1 / 3))))
    edges = np.linspace(lo, hi, bins + 1)
    t, _, dens = _median_time(lambda: _sim_density(C, d, gamma, edges, seed), repeat)
    return t, edges, dens


def _largest_d(C, gamma, lo, hi, seed, budget, repeat, max_d):
    """Largest d (doubling from 8, then bisection to ~6%) with median time <= budget."""
    d_ok, res_ok = 8, _sim_at(C, 8, gamma, lo, hi, seed, repeat)
    d = 16
    while d <= max_d:
        res = _sim_at(C, d, gamma, lo, hi, seed, repeat)
        if res[0] > budget:
            break
        d_ok, res_ok = d, res
        d *= 2
    lo_d, hi_d = d_ok, min(d, max_d + 1)
    while hi_d - lo_d > max(4, lo_d // 16):
        mid = (lo_d + hi_d) // 2
        res = _sim_at(C, mid, gamma, lo, hi, seed, repeat)
        if res[0] <= budget:
            lo_d, res_ok = mid, res
        else:
            hi_d = mid
    return lo_d, res_ok


def run_bench(
    C=10,
    gamma=0.5,
    n_atoms=1000,
    n_grid=1000,
    *,
    ref_atoms=2**16,
    n_mp=12,
    mp_dps=25,
    n_matrix=40,
    n_ladder=5,
    repeat=3,
    threads=1,
    max_d=4096,
    seed=0,
) -> dict:
    """Run the benchmark (module docstring) and return a JSON-serializable dict.

    Parameters: ``C >= 2``, ``gamma > 0``, ``n_atoms >= 1`` softmax atoms, ``n_grid >= 2``;
    ``ref_atoms >= n_atoms`` atoms of the reference law; ``n_mp >= 1`` mpmath points at
    ``mp_dps`` in [20, 100] digits; ``n_matrix >= 2`` generic-solver window, ``n_ladder >= 1``
    of its points re-solved by the ladder; ``repeat >= 1`` timed runs (median);
    ``threads >= 1``; ``max_d >= 8`` largest simulated ``d``; ``seed >= 0``.
    ``"units"`` in the result says what each number is.
    """
    import numba
    import torch
    from threadpoolctl import threadpool_limits

    from rmthess._checks import check_int, check_positive_float
    from rmthess.theory.gmp import check_gamma_range
    from rmthess.theory.layer_laws import _MAX_EIG_WORK

    C = check_int("C", C, 2, 1000)
    gamma = check_gamma_range(check_positive_float("gamma", gamma))
    n_atoms = check_int("n_atoms", n_atoms, 1, 10**6)
    n_grid = check_int("n_grid", n_grid, 2, 10**6)
    ref_atoms = check_int("ref_atoms", ref_atoms, n_atoms, 10**7)
    n_mp = check_int("n_mp", n_mp, 1, 1000)
    mp_dps = check_int("mp_dps", mp_dps, 20, 100)
    n_matrix = check_int("n_matrix", n_matrix, 2, n_grid)
    n_ladder = check_int("n_ladder", n_ladder, 1, n_matrix)
    repeat = check_int("repeat", repeat, 1, 100)
    threads = check_int("threads", threads, 1, 1024)
    max_d = check_int("max_d", max_d, 8, 10**5)
    seed = check_int("seed", seed, 0)
    if ref_atoms * float(C) ** 3 > _MAX_EIG_WORK:
        raise ValueError(
            f"ref_atoms * C^3 = {ref_atoms * float(C) ** 3:.3g} exceeds {_MAX_EIG_WORK:g}; "
            "lower ref_atoms or C"
        )
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(threads)
    args = (C, gamma, n_atoms, n_grid, ref_atoms, n_mp, mp_dps, n_matrix, n_ladder, repeat)
    with threadpool_limits(threads):
        return _run(*args, max_d, seed)


def _run(C, gamma, n_atoms, n_grid, ref_atoms, n_mp, mp_dps, n_matrix, n_ladder, repeat,
         max_d, seed):  # fmt: skip
    import numpy as np

    from rmthess.bench.solver import mpmath_reference
    from rmthess.theory.gmp import gmp_stieltjes
    from rmthess.theory.layer_laws import layer_law, layer_weight_law
    from rmthess.theory.matrix_gmp import matrix_gmp_stieltjes

    def make(n):
        return layer_law("linear-ce", C, gamma, n_atoms=n, seed=seed)

    make(16).pdf(np.linspace(0.01, 0.3, 50))  # JIT warm-up (numba cache=True)
    make(16).cdf(np.linspace(0.01, 0.3, 50))
    law = make(n_atoms)
    (lo, hi) = law.support()[0][0], law.support()[-1][1]
    pad = 0.05 * (hi - lo)
    x = np.linspace(lo - pad, hi + pad, n_grid)

    # ---------------------------------------------------------------- 1. exact reduction
    def route1():
        t0 = time.perf_counter()
        lw = make(n_atoms)
        t1 = time.perf_counter()
        lw.support()
        t2 = time.perf_counter()
        rho = lw.pdf(x)
        t3 = time.perf_counter()
        lw.cdf(x)
        t4 = time.perf_counter()
        return (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t3 - t0), rho

    runs = [route1() for _ in range(repeat)]
    parts = np.median(np.array([r[0] for r in runs]), axis=0)
    rho1 = runs[-1][1]
    comp = law.components[0]
    w_c = float(law.weights[0])  # 1 - 1/C: layer density = w_c * component density
    s1, flags = gmp_stieltjes(x + 0j, comp.atoms, comp.weights, gamma, return_flags=True)
    # (a) solver error: mpmath at n_mp points (evenly spaced + both sides of every edge)
    edges = np.array([e for iv in law.support() for e in iv])
    near = np.searchsorted(x, edges)
    near = np.concatenate([near - 1, near])
    near = near[(near >= 0) & (near < n_grid)]
    idx = np.unique(np.concatenate([np.linspace(0, n_grid - 1, n_mp).round().astype(int), near]))
    t0 = time.perf_counter()
    s_mp, resid = mpmath_reference(x[idx], comp.atoms, comp.weights, gamma, s1[idx], dps=mp_dps)
    t_mp = time.perf_counter() - t0
    err_mp = w_c * np.abs(s1[idx].imag - s_mp.imag) / np.pi
    # (a') Richardson eta-ladder re-solve of the scalar equation, away from the edges
    scale = float(np.abs(comp.atoms).max())
    dist = np.min(np.abs(x[:, None] - edges[None, :]), axis=1)
    away = dist > _EDGE_FRAC * (hi - lo)
    s_lad = _richardson(lambda z: comp.stieltjes(z), x[away], 1e-9 * scale)
    err_lad = w_c * np.abs(s1[away].imag - s_lad.imag) / np.pi

    # ---------------------------------------------------------------- 2. generic route
    A, w = layer_weight_law("linear-ce", C, n_atoms=n_atoms, seed=seed)
    mid = int(np.searchsorted(x, 0.5 * (lo + hi)))  # bulk middle: no edge in the window
    start = int(np.clip(mid - n_matrix // 2, 0, n_grid - n_matrix))
    win = np.arange(start, start + n_matrix)
    t0 = time.perf_counter()
    matrix_gmp_stieltjes(x[win[:1]] + 0j, A, w, gamma)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    s2, flags2 = matrix_gmp_stieltjes(x[win] + 0j, A, w, gamma, return_flags=True)
    t_win = time.perf_counter() - t0
    per_pt = max(t_win - t_first, 0.0) / (n_matrix - 1)
    rho2 = np.maximum(s2.imag, 0.0) / np.pi
    lad_idx = win[np.linspace(0, n_matrix - 1, n_ladder).round().astype(int)]
    t0 = time.perf_counter()
    s2_lad = _richardson(lambda z: matrix_gmp_stieltjes(z, A, w, gamma), x[lad_idx], 1e-9 * scale)
    t_lad = time.perf_counter() - t0
    err2_lad = np.abs(rho2[np.searchsorted(win, lad_idx)] - s2_lad.imag / np.pi)
    diff_red = np.abs(rho2 - rho1[win])

    # ---------------------------------------------------------------- (b) discretisation
    t0 = time.perf_counter()
    ref = make(ref_atoms)
    rho_ref = ref.pdf(x)
    t_ref = time.perf_counter() - t0
    conv = []
    for n in sorted({n_atoms, *[2**k for k in range(10, 20) if 2**k < ref_atoms]}):
        t0 = time.perf_counter()
        r = make(n).pdf(x)
        t_n = time.perf_counter() - t0
        e = np.abs(r - rho_ref)
        conv.append(
            {
                "n_atoms": n,
                "build_pdf_s": t_n,
                "linf": float(e.max()),
                "linf_interior": float(e[away].max()),
                "l1": float(np.trapezoid(e, x)),
            }
        )

    # ---------------------------------------------------------------- 3. simulation
    sim_lo, sim_hi = max(x[0], 0.5 * lo), x[-1]
    budget = float(parts[4])
    sims = []
    for factor in (1, 10):
        d, (t_sim, b, dens) = _largest_d(
            C, gamma, sim_lo, sim_hi, seed, factor * budget, repeat, max_d
        )
        width = np.diff(b)
        ref_bins = np.diff(_cont_cdf(ref, b)) / width
        r1_bins = np.diff(_cont_cdf(law, b)) / width
        e_sim = _bin_errors(dens, ref_bins, width)
        e_r1 = _bin_errors(r1_bins, ref_bins, width)
        sims.append(
            {
                "budget_factor": factor,
                "budget_s": factor * budget,
                "d": int(d),
                "N": int(max(1, round(d / gamma))),
                "matrix_size": int(C * d),
                "capped_at_max_d": bool(d >= max_d),
                "wall_s": float(t_sim),
                "bins": int(width.size),
                "sim_l1": e_sim["l1"],
                "sim_linf": e_sim["linf"],
                "route1_l1_same_bins": e_r1["l1"],
                "route1_linf_same_bins": e_r1["linf"],
                "ratio_l1": e_sim["l1"] / max(e_r1["l1"], 1e-300),
                "ratio_linf": e_sim["linf"] / max(e_r1["linf"], 1e-300),
            }
        )

    return {
        "law": {
            "case": "linear-ce",
            "C": C,
            "gamma": gamma,
            "n_atoms": n_atoms,
            "scalar_atoms": int(comp.atoms.size),
            "support": law.support(),
            "zero_mass": law.zero_mass,
            "max_density": float(rho1.max()),
            "seed": seed,
        },
        "grid": {"n": n_grid, "lo": float(x[0]), "hi": float(x[-1])},
        "threads": _threads(),
        "repeat": repeat,
        "route1_reduction": {
            "construct_s": float(parts[0]),
            "support_s": float(parts[1]),
            "pdf_s": float(parts[2]),
            "cdf_s": float(parts[3]),
            "density_total_s": float(parts[4]),
            "density_total_s_runs": [float(r[0][4]) for r in runs],
            "ladder_points": int(np.sum(flags == 1)),
            "uncertified_points": int(np.sum(flags == 2)),
            "solver_err_mpmath": float(err_mp.max()),
            "mpmath_points": int(idx.size),
            "mpmath_dps": mp_dps,
            "mpmath_max_residual": resid,
            "mpmath_s": t_mp,
            "solver_err_ladder": float(err_lad.max()),
            "ladder_check_points": int(away.sum()),
            "discretisation_linf": conv[[c["n_atoms"] for c in conv].index(n_atoms)]["linf"],
            "discretisation_linf_interior": conv[[c["n_atoms"] for c in conv].index(n_atoms)][
                "linf_interior"
            ],
            "discretisation_l1": conv[[c["n_atoms"] for c in conv].index(n_atoms)]["l1"],
        },
        "reference": {
            "n_atoms": ref_atoms,
            "scalar_atoms": int(ref.components[0].atoms.size),
            "build_and_pdf_s": t_ref,
            "convergence": conv,
        },  # fmt: skip
        "route2_generic": {
            "window_points": n_matrix,
            "window": [float(x[win[0]]), float(x[win[-1]])],
            "first_point_s": t_first,
            "window_s": t_win,
            "per_continued_point_s": per_pt,
            "extrapolated_grid_s": t_first + (n_grid - 1) * per_pt,
            "ladder_points": int(np.sum(flags2 == 1)),
            "uncertified_points": int(np.sum(flags2 == 2)),
            "solver_err_ladder": float(err2_lad.max()),
            "ladder_check_points": int(lad_idx.size),
            "ladder_check_s": t_lad,
            "diff_vs_reduction_linf": float(diff_red.max()),
            "diff_vs_reduction_rel": float(diff_red.max() / rho1[win].max()),
        },
        "simulation": sims,
        "goal": {"wall_s": 1.0, "err": 1e-6},
        "units": {
            "*_s": "seconds of wall-clock time (numba JIT warm-up excluded); route 1: median "
            "of `repeat` runs",
            "density_total_s": "construct + support + pdf on the grid (cdf not included)",
            "solver_err_*": "max |rho - rho_check| in density units of the layer law (same "
            "atoms): mpmath = certified 25+-digit Newton; ladder = Richardson "
            "2 s(x+i eta) - s(x+2i eta), eta = 1e-9 max|tau|, points > 2% of the width from "
            "an edge",
            "discretisation_*": "max / integral of |rho_n - rho_ref| over the grid, rho_ref "
            "the same law with reference.n_atoms atoms",
            "diff_vs_reduction": "generic solver on the same C x C atoms minus the exact "
            "reduction: non-exchangeability of the finite draws (not a solver error)",
            "extrapolated_grid_s": "first_point_s + (n_grid - 1) * per_continued_point_s: an "
            "extrapolation from a window in the middle of the bulk, not a measurement; every "
            "edge crossing that needs an eta ladder adds about first_point_s",
            "linf_interior": "the same over points > 2% of the support width from an edge",
            "build_pdf_s": "one run (not a median): law construction + support + pdf",
            "sim_l1/linf": "histogram of one sampled C d x C d layer Hessian (d exact zeros "
            "dropped) vs the reference law's bin averages (cdf differences); l1 in mass "
            "units, linf in density units; route1_*_same_bins: route 1's own bin averages "
            "in the same bins; ratio = sim / route 1",
        },
    }


def _table(r: dict) -> str:
    L, r1, r2, ref = r["law"], r["route1_reduction"], r["route2_generic"], r["reference"]
    out = [
        f"Layer density benchmark: linear-ce C={L['C']}, gamma={L['gamma']}, {L['n_atoms']} "
        f"atoms ({L['scalar_atoms']} scalar), {r['grid']['n']} points, threads {r['threads']}",
        f"route 1 (exact reduction): total {r1['density_total_s']:.3f} s = construct "
        f"{r1['construct_s']:.3f} + support {r1['support_s']:.3f} + pdf {r1['pdf_s']:.3f}; "
        f"cdf {r1['cdf_s']:.3f} s",
        f"  solver error: mpmath {r1['solver_err_mpmath']:.2e} ({r1['mpmath_points']} pts), "
        f"eta-ladder {r1['solver_err_ladder']:.2e} ({r1['ladder_check_points']} pts)",
        f"  discretisation vs {ref['n_atoms']} atoms: Linf {r1['discretisation_linf']:.2e}, "
        f"L1 {r1['discretisation_l1']:.2e} (max density {L['max_density']:.3g})",
        "  convergence: "
        + ", ".join(
            f"n={c['n_atoms']}: {c['linf']:.1e}/{c['linf_interior']:.1e} ({c['build_pdf_s']:.2f} s)"
            for c in ref["convergence"]
        )
        + " (Linf all/interior)",
        f"route 2 (generic matrix solver): {r2['per_continued_point_s']:.3f} s/point, "
        f"first {r2['first_point_s']:.2f} s, extrapolated {r2['extrapolated_grid_s']:.0f} s "
        f"for the grid; ladder check {r2['solver_err_ladder']:.2e}; vs reduction "
        f"{r2['diff_vs_reduction_linf']:.2e} (non-exchangeability)",
    ]
    for s in r["simulation"]:
        out.append(
            f"simulation x{s['budget_factor']}: d={s['d']} ({s['matrix_size']}^2), "
            f"{s['wall_s']:.3f} s, {s['bins']} bins: Linf {s['sim_linf']:.2e} vs route 1 "
            f"{s['route1_linf_same_bins']:.2e} (x{s['ratio_linf']:.3g}); L1 {s['sim_l1']:.2e}"
            f" vs {s['route1_l1_same_bins']:.2e} (x{s['ratio_l1']:.3g})"
        )
    return "\n".join(out)


_RUN_ARGS = ("C", "gamma", "n_atoms", "n_grid", "ref_atoms", "n_mp", "mp_dps", "n_matrix",
             "n_ladder", "repeat", "threads", "max_d", "seed")  # fmt: skip


def run(args) -> int:
    r = run_bench(**{k: getattr(args, k) for k in _RUN_ARGS})
    print(json.dumps(r, indent=2) if args.json else _table(r))
    return 0
