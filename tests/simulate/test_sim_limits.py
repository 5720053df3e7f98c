"""Seeding, input limits and output paths of the simulate layer (issue 7).

- A seed fixes every number whatever the batching (trial_batch, max_bytes), and
  configurations of a sweep use streams derived from (seed, C), never seed + i.
- sample_instance keeps the documented distribution (N(0, 1) data, LeCun weights).
- Huge or impossible sizes are refused at once with a ValueError naming the parameter and
  the supported range (or what would fit in memory), before anything is allocated.
- ``rmthess simulate --csv`` checks its path before simulating and writes atomically.
"""

import json
import math
import re
import time

import numpy as np
import pytest
import torch
from scipy import stats

from rmthess.cli import main
from rmthess.simulate import device as sim_device
from rmthess.simulate import frobenius as frob
from rmthess.simulate.frobenius import block_frobenius, frobenius_sweep
from rmthess.simulate.sampling import sample_instance, trial_seeds

GB = 10**9


# ----------------------------------------------------------------------------- seeding
@pytest.mark.parametrize("case, m", [("hidden-ce", 4), ("linear-ce", None), ("output-ce", 3)])
def test_batching_does_not_change_the_numbers(case, m):
    kw = dict(C=5, d=12, N=20, m=m, trials=5, seed=3, device="cpu")
    ref = block_frobenius(case, **kw, trial_batch=5)
    for extra in (
        dict(trial_batch=1),
        dict(trial_batch=3),
        dict(trial_batch=2, max_bytes=8 * 7),  # G chunked by 7 rows
        dict(max_bytes=10**9),
        dict(max_bytes=8 * 20 * 20 + 1),
    ):
        got = block_frobenius(case, **kw, **extra)
        # same draws; only the summation order of the chunked Gram reduction differs
        # (float64 round-off, ~1e-16 relative per term)
        np.testing.assert_allclose(got.F_diag_trials, ref.F_diag_trials, rtol=1e-13, atol=0)
        np.testing.assert_allclose(got.F_off_trials, ref.F_off_trials, rtol=1e-13, atol=0)


def test_first_trials_do_not_depend_on_the_number_of_trials():
    a = block_frobenius("linear-ce", 4, 8, 12, trials=2, seed=9, device="cpu")
    b = block_frobenius("linear-ce", 4, 8, 12, trials=6, seed=9, device="cpu", trial_batch=4)
    np.testing.assert_allclose(b.F_diag_trials[:2], a.F_diag_trials, rtol=1e-13)


def test_sweep_streams_are_distinct():
    # linear-mse: a_i = 1, u_i = x_i, so F_diag = (1/d)||X X^T / N||_F^2 depends on the data
    # X alone (not on C): equal values mean shared data. With seed + i, C=16 of a sweep
    # starting at seed 0 reused the data of C=8 at seed 1.
    kw = dict(d=6, N=9, trials=3, device="cpu")
    s0 = frobenius_sweep("linear-mse", [8, 16], seed=0, **kw)
    s1 = frobenius_sweep("linear-mse", [8, 16], seed=1, **kw)
    vals = [s0["F_diag"][0], s0["F_diag"][1], s1["F_diag"][0], s1["F_diag"][1]]
    assert len(set(vals)) == 4
    # same seed, different C: different data too
    a = block_frobenius("linear-mse", 8, **kw, seed=0)
    b = block_frobenius("linear-mse", 16, **kw, seed=0)
    assert not np.any(np.isin(a.F_diag_trials, b.F_diag_trials))
    # a row of the sweep is the single call with the same seed
    assert s1["F_diag"][1] == pytest.approx(block_frobenius("linear-mse", 16, **kw, seed=1).F_diag)


def test_trial_seeds_are_distinct_and_position_free():
    seeds = [s for seed in range(4) for C in (2, 8, 16) for s in trial_seeds(seed, 50, key=(C, 0))]
    assert len(set(seeds)) == len(seeds)
    assert trial_seeds(5, 3, key=(8, 0), start=2) == trial_seeds(5, 5, key=(8, 0))[2:]
    assert all(0 <= s < 2**63 for s in seeds)


def test_sample_instance_distribution():
    # X ~ N(0, 1), W ~ N(0, 1/d), V ~ N(0, 1/m), independent across trials. The seed is
    # fixed, so the KS p-values are fixed numbers; a wrong scale (e.g. std 1 for W) gives
    # p ~ 0 at these sample sizes (ks statistic ~0.3 for 10^4 draws).
    C, d, N, m, T = 30, 40, 60, 20, 4
    inst = sample_instance("hidden", C, d, N, m, trials=T, seed=1, device="cpu")
    for name, x, std in (("X", inst.X, 1.0), ("W", inst.W, d**-0.5), ("V", inst.V, m**-0.5)):
        z = (x / std).flatten().numpy()
        assert stats.kstest(z, "norm").pvalue > 1e-3, name
    X = inst.X.reshape(T, -1).numpy()
    n = X.shape[1]
    corr = np.corrcoef(X)[np.triu_indices(T, 1)]
    assert np.all(np.abs(corr) < 5 / math.sqrt(n))
    lin = sample_instance("linear", C, d, N, trials=2, seed=1, device="cpu")
    assert lin.V is None and lin.W.shape == (2, C, d)
    assert stats.kstest((lin.W * d**0.5).flatten().numpy(), "norm").pvalue > 1e-3
    # trial t does not depend on how many trials are drawn
    one = sample_instance("hidden", C, d, N, m, trials=1, seed=1, device="cpu")
    assert torch.equal(one.X[0], inst.X[0]) and torch.equal(one.V[0], inst.V[0])


# --------------------------------------------------------------------------- bad input
def _fast(fn, *args, **kwargs):
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as exc:
        fn(*args, **kwargs)
    assert time.perf_counter() - t0 < 2.0, "refused only after a long computation"
    return str(exc.value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(C=10**30), r"C must be an integer in \[2, 2147483647\]"),
        (dict(d=10**30), r"d must be an integer in \[1, 2147483647\]"),
        (dict(N=2**40), r"N must be an integer in \[1, 2147483647\]"),
        (dict(trials=1e30), r"trials must be an integer in \[1, 1000000\]"),
        (dict(trials=10**6 + 1), r"trials must be an integer in \[1, 1000000\]"),
        (dict(max_pairs=10**30), r"max_pairs must be an integer in \[1, "),
        (dict(trial_batch=10**30), r"trial_batch must be an integer in \[1, 1000000\]"),
        (dict(m=3), "m does not apply"),
    ],
)
def test_out_of_range_is_refused_at_once(kwargs, match):
    kw = {**dict(case="linear-ce", C=8, d=16, N=32, device="cpu"), **kwargs}
    msg = _fast(block_frobenius, **kw)
    assert re.search(match, msg), msg


def test_hidden_m_too_large_is_refused():
    msg = _fast(block_frobenius, "hidden-ce", 8, 16, 32, 10**30, device="cpu")
    assert "m must be an integer in [2, 2147483647]" in msg


@pytest.fixture
def small_machine(monkeypatch):
    """Pretend the machine has ``mem`` bytes; no simulation may start."""

    def set_mem(mem):
        monkeypatch.setattr(sim_device, "machine_memory", lambda dev: (mem, "total RAM"))

    def no_sampling(*a, **k):
        raise AssertionError("data were sampled before the memory check")

    monkeypatch.setattr(frob, "sample_trials", no_sampling)
    return set_mem


def test_memory_refused_names_d_and_N(small_machine):
    small_machine(16 * GB)
    msg = _fast(block_frobenius, "linear-ce", 8, 100_000, 200_000, device="cpu")
    # data X alone: 8 bytes * 1e5 * 2e5 = 160 GB
    assert "data X" in msg and "d=100000" in msg and "N=200000" in msg
    assert "total RAM is 16 GB" in msg and "d <= " in msg and "N <= " in msg


def test_memory_refused_names_C(small_machine):
    small_machine(8 * GB)
    msg = _fast(block_frobenius, "linear-ce", 10_000_000, 16, 512, device="cpu")
    # logits + softmax: 3 * 8 bytes * N * C = 123 GB
    assert "logits and softmax" in msg and "C <= " in msg


def test_memory_suggestion_fits_and_runs(monkeypatch):
    # 64 MB machine: linear-ce with C=2000, N=2000 needs 3 * 8 * N * C = 96 MB of softmax
    monkeypatch.setattr(sim_device, "machine_memory", lambda dev: (64 * 2**20, "total RAM"))
    msg = _fast(block_frobenius, "linear-ce", 2000, 16, 2000, trials=2, device="cpu")
    best = int(re.search(r"C <= (\d+)", msg).group(1))
    assert 2 <= best < 2000
    res = block_frobenius("linear-ce", best, 16, 2000, trials=2, device="cpu")
    assert np.isfinite(res.F_diag)
    with pytest.raises(ValueError, match="needs about"):  # best is the largest that fits
        block_frobenius("linear-ce", best + 1, 16, 2000, trials=2, device="cpu")


def test_memory_refused_names_trial_batch(small_machine):
    small_machine(256 * 2**20)
    msg = _fast(block_frobenius, "linear-ce", 8, 64, 4096, trials=200, trial_batch=200,
                device="cpu")  # fmt: skip
    assert "trial_batch <= " in msg


def test_sweep_checks_every_C_before_simulating(monkeypatch):
    monkeypatch.setattr(sim_device, "machine_memory", lambda dev: (GB, "total RAM"))
    ran = []
    monkeypatch.setattr(frob, "_run", lambda pl: ran.append(pl.C))
    with pytest.raises(ValueError, match="C <= "):
        frobenius_sweep("linear-ce", [4, 10**7], 16, 512, device="cpu")
    assert ran == []


def test_machine_memory_cpu_and_cuda(monkeypatch):
    import os

    mem, what = sim_device.machine_memory(torch.device("cpu"))
    assert mem == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") and what == "total RAM"
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda dev=None: (3 * GB, 80 * GB))
    mem, what = sim_device.machine_memory(torch.device("cuda:0"))
    assert mem == 3 * GB and "free memory" in what


def test_block_eigenvalues_memory_refused(monkeypatch):
    from rmthess.simulate.spectra import block_eigenvalues

    monkeypatch.setattr(sim_device, "machine_memory", lambda dev: (GB, "total RAM"))
    msg = _fast(block_eigenvalues, "linear-ce", "diag", 8, 40_000, 80_000, device="cpu")
    assert "needs about" in msg and "total RAM is 1 GB" in msg
    msg = _fast(block_eigenvalues, "linear-ce", "diag", 8, 16, 32, trials=1e30, device="cpu")
    assert "trials must be an integer in [1, 1000000]" in msg


# ---------------------------------------------------------------------------------- CLI
def _cli(argv, capsys):
    t0 = time.perf_counter()
    rc = main(["simulate", *argv])
    err = capsys.readouterr().err
    return rc, err, time.perf_counter() - t0


@pytest.mark.parametrize(
    "argv, names",
    [
        ("--case linear-ce --d 100000 --N 200000 --C 8", ("d <= ", "N <= ")),
        ("--case linear-ce --C 10000000 --d 16", ("C <= ",)),
    ],
)
def test_cli_refuses_huge_sizes(argv, names, capsys, monkeypatch):
    monkeypatch.setattr(sim_device, "machine_memory", lambda dev: (16 * GB, "total RAM"))
    rc, err, dt = _cli([*argv.split(), "--device", "cpu"], capsys)
    assert rc == 2 and dt < 2.0 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and all(n in err for n in names)


def test_cli_bad_csv_path_fails_before_simulating(capsys, monkeypatch, tmp_path):
    ran = []
    monkeypatch.setattr(frob, "_run", lambda pl: ran.append(pl.C))
    argv = "--case linear-ce --C 4 --d 8 --N 16 --trials 2 --device cpu --csv".split()
    for bad, what in (("/nonexistent/dir/x.csv", "does not exist"), (str(tmp_path), "directory")):
        rc, err, _ = _cli([*argv, bad], capsys)
        assert rc == 2 and "--csv" in err and what in err and "Traceback" not in err
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        import os

        if not os.access(ro, os.W_OK):  # (root can write anywhere)
            rc, err, _ = _cli([*argv, str(ro / "x.csv")], capsys)
            assert rc == 2 and "--csv" in err
    finally:
        ro.chmod(0o700)
    assert ran == []


def test_csv_written_atomically(tmp_path, monkeypatch):
    import os

    from rmthess.simulate.cli import write_atomic

    out = tmp_path / "t.csv"
    out.write_text("old\n")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(str(out), "new\n")
    assert out.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["t.csv"]
    monkeypatch.undo()
    write_atomic(str(out), "new\n")
    assert out.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_cli_json_is_strict_json(capsys):
    rc = main("simulate --case linear-mse --C 3 --d 4 --N 6 --trials 1 --device cpu --json".split())
    assert rc == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["F_diag_se"] is None and rec["ratio_se"] is None and rec["seed"] == 0
