"""Gram-route block norms vs autograd full Hessian: speed, largest size in 60 s, GFLOP/s.

``rmthess bench simulate [--json] [--quick] [--device auto|cpu|cuda] [--dtype float64|float32]``

Three measurements, all in one run, on the linear-ce model (C x d weights, so the full
Hessian is (C d) x (C d)):

1. **Same-size comparison.** For each (d, N, C) both routes compute every diagonal
   block norm ``(1/d)||H_kk||_F^2`` and every off-diagonal one (k < l) from the SAME
   sampled instance: the Gram route (:func:`rmthess.simulate.frobenius.instance_sq_norms`)
   and the straightforward route (``torch.func.hessian`` of the loss, via
   :func:`rmthess.simulate.hessian.autograd_hessian`, then slicing the C x C blocks).
   Reported: seconds of each (minimum over repeats), the speed ratio, and the largest
   relative difference of the block norms (a correctness check in the same run).
2. **Largest size in the time limit (default 60 s).** d = N grows geometrically (factor
   ``sqrt 2``) at fixed C; a size is started only while the previous time times the
   predicted growth (N^3 scaling: ``2^{3/2}`` per step) stays below the limit, and only
   while the estimated memory stays below ``--mem-gb``. Reported: the largest size that
   finished within the limit, its time, and why the search stopped.
3. **Achieved GFLOP/s.** Flops of the Gram route (:func:`rmthess.simulate.frobenius.gram_flops`:
   ``2 N^2 d`` for ``U^T U`` plus ``N^2 + 2 N^2 P`` for ``(G o G) A``) divided by its time at
   the largest Gram size of step 2 that took at most 4 s, against this machine's
   plain ``torch.matmul`` rate for an (N x d) @ (d x N) product in the same dtype (the two
   timed alternately, best of 3 each).

Timings exclude sampling (both routes start from the same instance) and include
everything after it. The instance for the largest-size search is one trial. On a machine
loaded by other processes, small multi-threaded torch calls stall (threads descheduled at
OpenMP barriers); ``--threads 1`` gives steadier small-size timings there.
"""

from __future__ import annotations

import json
import math
import time

from rmthess._cli import add_json

CASE = "linear-ce"


def add_arguments(parser) -> None:
    from rmthess._checks import number_arg

    add_json(parser)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, ~10 s (for tests)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--dtype", default="float64", help="float64 | float32")
    parser.add_argument(
        "--C",
        default=16,
        type=number_arg("int", name="C", minimum=2),
        help="classes for the size search (>= 2)",
    )
    parser.add_argument(
        "--time-limit",
        default=60.0,
        type=number_arg("float", name="time-limit"),
        help="seconds a route may take in the size search",
    )
    parser.add_argument(
        "--mem-gb",
        default=6.0,
        type=number_arg("float", name="mem-gb"),
        help="memory cap (GiB) for the autograd Hessian search",
    )
    parser.add_argument(
        "--max-d",
        default=None,
        type=number_arg("int", name="max-d", minimum=1),
        help="largest d = N tried in the size search (default: none)",
    )
    parser.add_argument(
        "--threads",
        default=None,
        type=number_arg("int", name="threads", minimum=1),
        help="torch CPU threads (default: torch's own choice)",
    )


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _timeit(fn, dev, min_total: float = 0.3, max_reps: int = 5):
    """Minimum wall time of ``fn()`` over repeats (at least one; more while cheap)."""
    best, out, total, reps = math.inf, None, 0.0, 0
    while reps < max_reps and (reps == 0 or total < min_total):
        _sync(dev)
        t0 = time.perf_counter()
        out = fn()
        _sync(dev)
        dt = time.perf_counter() - t0
        best = min(best, dt)
        total += dt
        reps += 1
    return best, out


def _all_blocks(C: int):
    from rmthess.simulate.frobenius import select_blocks

    return select_blocks(C, max_diag=C, max_pairs=C * (C - 1) // 2)


def gram_route(inst, rows, cols):
    """Normalized squared norms of the listed blocks by the Gram route (one trial)."""
    from rmthess.simulate.frobenius import instance_sq_norms

    sq, _ = instance_sq_norms(CASE, inst, rows, cols, method="gram")
    return sq[0]


def autograd_route(inst, rows, cols):
    """Same quantity via ``torch.func.hessian`` of the loss and slicing the (C d)^2 matrix."""
    import torch

    from rmthess.simulate.hessian import autograd_hessian

    C, d = inst.W.shape[1], inst.W.shape[2]
    H = autograd_hessian("linear", "ce", inst, trial=0)  # (C d, C d), rows of W row-major
    blocks = H.reshape(C, d, C, d)
    r = torch.as_tensor(rows, device=H.device)
    c = torch.as_tensor(cols, device=H.device)
    sq = torch.stack([blocks[k, :, l, :].square().sum() for k, l in zip(r, c, strict=True)])
    return sq / d


def _instance(d, N, C, dev, dt, seed=0):
    from rmthess.simulate.sampling import sample_instance

    return sample_instance("linear", C, d, N, trials=1, seed=seed, device=dev, dtype=dt)


def compare(sizes, dev, dt) -> list[dict]:
    """Step 1: both routes at the same sizes, speed ratio and agreement."""
    out = []
    warm = _instance(8, 16, 2, dev, dt)  # first calls pay one-off dispatch/vmap set-up costs
    wr, wc, _ = _all_blocks(2)
    gram_route(warm, wr, wc)
    autograd_route(warm, wr, wc)
    for d, N, C in sizes:
        inst = _instance(d, N, C, dev, dt)
        rows, cols, _ = _all_blocks(C)

        # many cheap repeats, before AND after the (slow) autograd route: on a loaded machine
        # small multi-threaded calls can stall for seconds (OpenMP threads descheduled)
        def g(inst=inst, r=rows, c=cols):
            return gram_route(inst, r, c)

        tg, sg = _timeit(g, dev, 1.0, max_reps=50)
        ta, sa = _timeit(
            lambda inst=inst, r=rows, c=cols: autograd_route(inst, r, c), dev, max_reps=3
        )
        tg = min(tg, _timeit(g, dev, 1.0, max_reps=50)[0])
        rel = float(((sg - sa).abs() / sa.abs().clamp_min(1e-300)).max())
        out.append(
            {
                "d": d,
                "N": N,
                "C": C,
                "blocks": len(rows),
                "gram_s": tg,
                "autograd_s": ta,
                "speedup": ta / tg,
                "max_rel_diff": rel,
            }
        )
    return out


def _autograd_bytes(d, N, C, item) -> float:
    """Rough peak memory of torch.func.hessian on the linear-ce loss: the (C d)^2 Hessian
    plus the vmapped forward-over-reverse intermediates (about 6 tensors of C N per
    tangent, C d tangents)."""
    n = C * d
    return item * (n * n + 6.0 * n * C * N + d * N)


def _gram_bytes(d, N, C, item) -> float:
    P = C + C * (C - 1) // 2
    return item * (d * N + N * P + 2 * C * N) + 512 * 2**20


def largest_in_limit(route, C, dev, dt, limit, mem_bytes, d0=64, max_d=None) -> dict:
    """Step 2: grow d = N by sqrt(2) while the predicted time and memory fit."""
    import torch

    item = torch.empty((), dtype=dt).element_size()
    fn = gram_route if route == "gram" else autograd_route
    membytes = _gram_bytes if route == "gram" else _autograd_bytes
    rows, cols, _ = _all_blocks(C)
    d, last, history, reason = float(d0), None, [], "time limit"
    growth = 2**1.5
    while True:
        di = int(round(d))
        if max_d is not None and di > max_d:
            reason = f"max-d {max_d} reached"
            break
        if membytes(di, di, C, item) > mem_bytes:
            reason = f"memory cap ({mem_bytes / 2**30:.0f} GiB) at d = N = {di}"
            break
        if last is not None and last["seconds"] * growth > limit:
            reason = (
                f"next size d = N = {di} predicted {last['seconds'] * growth:.0f} s > {limit:g} s"
            )
            break
        inst = _instance(di, di, C, dev, dt)
        _sync(dev)
        t0 = time.perf_counter()
        fn(inst, rows, cols)
        _sync(dev)
        sec = time.perf_counter() - t0
        del inst
        rec = {"d": di, "N": di, "C": C, "seconds": sec}
        history.append(rec)
        if sec > limit:
            reason = f"d = N = {di} took {sec:.0f} s > {limit:g} s"
            break
        last = rec
        d *= math.sqrt(2)
    return {"route": route, "largest": last, "stopped": reason, "history": history}


def gflops(d, N, C, dev, dt, reps: int = 3) -> dict:
    """Step 3: achieved GFLOP/s of the Gram route vs plain matmul at (d, N, C).

    The two are timed alternately ``reps`` times and the minimum of each is kept, so that
    load from other processes affects both alike.
    """
    import torch

    from rmthess.simulate.frobenius import gram_flops

    inst = _instance(d, N, C, dev, dt)
    rows, cols, _ = _all_blocks(C)
    a = inst.X[0].T.contiguous()
    b = inst.X[0]
    gram_route(inst, rows, cols)  # warm-up
    torch.matmul(a, b)
    tg, tm = math.inf, math.inf
    for _ in range(reps):
        tg = min(tg, _timeit(lambda: gram_route(inst, rows, cols), dev, 0.0, 1)[0])
        tm = min(tm, _timeit(lambda: torch.matmul(a, b), dev, 0.0, 1)[0])
    f_gram, f_total = gram_flops(N, d, len(rows))
    mm = 2.0 * N * N * d / tm / 1e9
    achieved = f_total / tg / 1e9
    return {
        "d": d,
        "N": N,
        "C": C,
        "blocks": len(rows),
        "seconds": tg,
        "matmul_seconds": tm,
        "gram_flops": f_gram,
        "total_flops": f_total,
        "gram_route_gflops": achieved,
        "matmul_gflops": mm,
        "fraction_of_matmul": achieved / mm,
    }


def run_bench(
    quick=False, device="auto", dtype="float64", C=16, time_limit=60.0, mem_gb=6.0, max_d=None
) -> dict:
    """All three measurements; returns a JSON-able dict."""
    import torch

    from rmthess.simulate.device import resolve_device, resolve_dtype

    dev = resolve_device(device)
    dt = resolve_dtype(dtype)
    t_start = time.perf_counter()
    if quick:
        sizes = [(16, 32, 3), (32, 64, 4)]
        time_limit = min(time_limit, 0.5)
        max_d = 64 if max_d is None else max_d
        flop_size = (128, 128)
    else:
        sizes = [(64, 128, 8), (128, 256, 16), (256, 512, 16)]
        flop_size = None
    res = {
        "case": CASE,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "dtype": str(dt).replace("torch.", ""),
        "time_limit_s": time_limit,
        "compare": compare(sizes, dev, dt),
    }
    mem = mem_gb * 2**30
    res["largest"] = {
        "gram": largest_in_limit("gram", C, dev, dt, time_limit, 8 * mem, max_d=max_d),
        "autograd": largest_in_limit("autograd", C, dev, dt, time_limit, mem, max_d=max_d),
    }
    if flop_size is None:
        # largest Gram size of step 2 that took <= 4 s (repeats stay affordable)
        hist = [h for h in res["largest"]["gram"]["history"] if h["seconds"] <= 4.0]
        n = max((h["d"] for h in hist), default=256)
        flop_size = (n, n)
    res["gflops"] = gflops(flop_size[0], flop_size[1], C, dev, dt)
    res["total_s"] = time.perf_counter() - t_start
    return res


def format_table(res: dict) -> str:
    lines = [
        f"rmthess bench simulate  case={res['case']}  device={res['device']} "
        f"({res['device_name']}, {res['threads']} threads)  dtype={res['dtype']}",
        "",
        "1. Same size, all blocks: Gram route vs torch.func.hessian + slicing",
        f"{'d':>6} {'N':>6} {'C':>4} {'blocks':>6} {'gram s':>10} {'autograd s':>11} "
        f"{'speedup':>9} {'max rel diff':>13}",
    ]
    for r in res["compare"]:
        lines.append(
            f"{r['d']:>6} {r['N']:>6} {r['C']:>4} {r['blocks']:>6} {r['gram_s']:>10.4f} "
            f"{r['autograd_s']:>11.3f} {r['speedup']:>9.0f} {r['max_rel_diff']:>13.1e}"
        )
    lines += ["", f"2. Largest d = N finished within {res['time_limit_s']:g} s"]
    for route, r in res["largest"].items():
        lg = r["largest"]
        size = f"d = N = {lg['d']}, C = {lg['C']}: {lg['seconds']:.2f} s" if lg else "none"
        lines.append(f"  {route:>8}: {size}   (stopped: {r['stopped']})")
    g = res["gflops"]
    lines += [
        "",
        f"3. GFLOP/s at d = N = {g['d']}, C = {g['C']} ({g['blocks']} blocks)",
        f"  Gram route: {g['total_flops'] / 1e9:.1f} GFLOP in {g['seconds']:.3f} s = "
        f"{g['gram_route_gflops']:.1f} GFLOP/s",
        f"  plain torch.matmul ({g['N']}x{g['d']} @ {g['d']}x{g['N']}): "
        f"{g['matmul_gflops']:.1f} GFLOP/s   (Gram route at {g['fraction_of_matmul']:.2f}x)",
        "",
        f"total bench time {res['total_s']:.1f} s",
    ]
    return "\n".join(lines)


def run(args) -> int:
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    res = run_bench(
        args.quick, args.device, args.dtype, args.C, args.time_limit, args.mem_gb, args.max_d
    )
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print(format_table(res))
    return 0
