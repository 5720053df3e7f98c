"""Sweep engine scaling, scheduler overhead, and a paper-scale cost projection.

``rmthess bench sweep [--json] [--quick]``

1. **Scaling.** One simulate grid (linear-ce, 8 values of C from 8 to 256, d = N = 1024,
   4 trials; one BLAS / torch thread per task) on a Dask ``LocalCluster`` with 1 worker and
   with 2 workers, in one run, fresh stores: wall seconds and their ratio, also without the
   fixed cost (cluster start, one task) measured by a one-configuration sweep.
2. **Scheduler overhead.** 200 tiny theory configurations (linear-mse, closed form) through
   the serial engine and Dask with 2 workers, ``chunk`` = 1 and 25: seconds per
   configuration against the task's own cost (serial). The fixed cost (cluster start, store,
   one task) is measured by a one-configuration sweep and subtracted.
3. **Projection.** Per-task seconds of ``block_frobenius`` (linear-ce, one trial, Gram route)
   measured at d = N = 256, 512, 1024 (C = 16), fitted as ``a N^3`` (the Gram route's flops
   are ``2 N^2 d + 2 N^2 P``), and extrapolated to the paper's full grid: 6 cases, C up to
   1000 (8 values), d = N up to 16384 (7 sizes 256..16384), 1000 seeds, on a 100-node
   cluster of machines like this one (2 cores each). A projection: say so where quoted.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time

from rmthess._cli import add_json


def add_arguments(parser) -> None:
    add_json(parser)
    parser.add_argument("--quick", action="store_true", help="small sizes (for tests)")


def _timed_sweep(spec, engine, tmp, **kw):
    from rmthess.sweep import run_sweep

    store = tempfile.mkdtemp(dir=tmp)
    t = time.perf_counter()
    res = run_sweep(spec, store, engine=engine, progress=False, **kw)
    return time.perf_counter() - t, res


def run(args) -> int:
    import math

    import numpy as np

    q = args.quick
    sim = {
        "task": "simulate",
        "grid": {
            "case": ["linear-ce"],
            "C": [8, 16] if q else [8, 16, 32, 64, 96, 128, 192, 256],
            "d": [64 if q else 1024],
            "N": [64 if q else 1024],
            "trials": [2 if q else 4],
            "threads": [1],
        },
    }
    tiny = {
        "task": "theory",
        "grid": {"case": ["linear-mse"], "C": list(range(2, 22 if q else 202)), "gamma": [0.5]},
    }
    tmp = tempfile.mkdtemp(prefix="rmthess-bench-sweep-")
    try:
        one = {"task": "theory", "grid": {"case": ["linear-mse"], "C": [2], "gamma": [0.5]}}
        t0, _ = _timed_sweep(one, "dask", tmp, workers=2)  # cluster start + one task
        t1, _ = _timed_sweep(sim, "dask", tmp, workers=1)
        t2, _ = _timed_sweep(sim, "dask", tmp, workers=2)
        n_tiny = len(tiny["grid"]["C"])
        ts, _ = _timed_sweep(tiny, "serial", tmp)
        td1, _ = _timed_sweep(tiny, "dask", tmp, workers=2, chunk=1)
        td25, _ = _timed_sweep(tiny, "dask", tmp, workers=2, chunk=25)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    from rmthess.simulate import block_frobenius

    sizes = (128, 256) if q else (256, 512, 1024)
    per = []
    for n in sizes:
        block_frobenius("linear-ce", 16, n, n, trials=1, device="cpu")  # warm-up
        t = time.perf_counter()
        block_frobenius("linear-ce", 16, n, n, trials=1, seed=1, device="cpu")
        per.append(time.perf_counter() - t)
    a = float(np.exp(np.mean(np.log(np.array(per) / np.array(sizes, float) ** 3))))
    grid_sizes = [256 * 2**i for i in range(7)]  # 256 .. 16384
    seconds_one_seed = 6 * 8 * sum(a * n**3 for n in grid_sizes)  # 6 cases x 8 C values
    total_core_s = 1000 * seconds_one_seed
    nodes, cores = 100, os.cpu_count() or 2
    res = dict(
        scaling=dict(
            one_worker_s=t1,
            two_workers_s=t2,
            speedup=t1 / t2,
            speedup_without_fixed=(t1 - t0) / (t2 - t0),
        ),
        overhead=dict(
            configs=n_tiny,
            serial_per_config_s=ts / n_tiny,
            dask_fixed_s=t0,
            dask_chunk1_per_config_s=(td1 - t0) / (n_tiny - 1),
            dask_chunk25_per_config_s=(td25 - t0) / (n_tiny - 1),
        ),
        projection=dict(
            measured_sizes=list(sizes),
            measured_seconds=per,
            a_seconds_per_N3=a,
            largest_task_s=a * grid_sizes[-1] ** 3,
            core_hours=total_core_s / 3600,
            wall_hours_100_nodes=total_core_s / (nodes * cores) / 3600,
            assumptions="6 cases x 8 C x 7 sizes (d = N = 256..16384) x 1000 seeds, one "
            "trial per task, Gram route ~ a N^3 fitted here, 100 nodes x "
            f"{cores} cores, no GPU, perfect packing",
        ),
    )
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    s, o, p = res["scaling"], res["overhead"], res["projection"]
    print(
        f"simulate grid on Dask: 1 worker {s['one_worker_s']:.1f} s, 2 workers "
        f"{s['two_workers_s']:.1f} s (speed-up {s['speedup']:.2f}x; "
        f"{s['speedup_without_fixed']:.2f}x without the fixed cost)\n"
        f"Dask fixed cost (LocalCluster start, one task) {o['dask_fixed_s']:.2f} s\n"
        f"{o['configs']} tiny theory configs, seconds per config: serial "
        f"{o['serial_per_config_s'] * 1e3:.2f} ms, dask chunk=1 "
        f"{o['dask_chunk1_per_config_s'] * 1e3:.2f} ms, chunk=25 "
        f"{o['dask_chunk25_per_config_s'] * 1e3:.2f} ms\n"
        f"projection (paper's full grid, 1000 seeds): {p['core_hours']:.3g} core-hours, "
        f"{p['wall_hours_100_nodes']:.3g} h on 100 nodes; largest task "
        f"{p['largest_task_s'] / 3600:.2f} h ({math.ceil(p['largest_task_s'])} s)"
    )
    return 0
