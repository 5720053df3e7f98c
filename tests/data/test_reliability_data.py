"""Issue 17 (data, landscape): no silent wrong number, refusals before work, one-line errors.

Each test fails on the code before the fix (noted per test)."""

import gzip
import io
import json
import os
import struct
import subprocess
import sys
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from rmthess.cli import main
from rmthess.data import MAX_CLASSES, Dataset, as_dataset, as_xy, digits, load_idx, load_npz


def _one_line_error(argv, capsys, match):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err, err
    return err


# ----------------------------------------------------------------------------- 17.1 pixels
def test_paper_pixels_of_0_255_images_land_in_minus1_1(tmp_path):
    """Before: 2x - 1 on 0..255 pixels gave inputs up to 509, silently."""
    from rmthess.landscape import paper_pixels

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(30, 4, 4)).astype(np.uint8)
    img[0, 0, 0], img[0, 0, 1] = 0, 255
    path = tmp_path / "raw.npz"
    np.savez(path, x_train=img, y_train=rng.integers(0, 3, 30))
    ds = paper_pixels(load_npz(path))
    assert ds.X.min() == -1 and ds.X.max() == 1
    # independent: the [0, 1] route of the same images
    ref = 2 * (img.reshape(30, 16).astype(float) / 255) - 1
    np.testing.assert_allclose(ds.X, ref, rtol=0, atol=1e-15)
    assert ds.meta["pixel_max"] == 255
    d16 = paper_pixels(digits(scale=False))  # 0..16 integers: white is 16
    np.testing.assert_allclose(d16.X, paper_pixels(digits()).X, atol=1e-15)


def test_paper_pixels_refuses_what_is_not_pixels():
    from rmthess.data import gaussian
    from rmthess.landscape import paper_pixels

    with pytest.raises(ValueError, match=r"not pixels in \[0, 1\] or integer pixels 0..255"):
        paper_pixels(gaussian(3, 4, 10))
    with pytest.raises(ValueError, match="pixel_max"):
        paper_pixels(digits(scale=False), pixel_max=8)


# ----------------------------------------------------------------------------- 17.1 overflow
def test_delta_curve_refuses_losses_past_float64():
    """Before: delta_curve([1e308, -1e308, 0]) returned inf."""
    from rmthess.landscape import delta_curve, delta_expected

    for f in (delta_curve, delta_expected):
        with pytest.raises(ValueError, match="losses must span less than 2\\^500"):
            f([1e308, -1e308, 0])


def test_delta_curve_is_scale_equivariant_down_to_tiny_losses():
    """Before: Delta_k^2 underflowed for losses ~1e-200, so rms was 0 while mean was not."""
    from rmthess.landscape import delta_curve

    x = np.random.default_rng(3).exponential(size=40)
    ref = delta_curve(x, 10, seed=1)
    for scale in (1e-200, 1e100):
        c = delta_curve(x * scale, 10, seed=1)
        for name in ("mean", "rms", "rms_se", "q95"):
            np.testing.assert_allclose(getattr(c, name), getattr(ref, name) * scale, rtol=1e-12)


# ----------------------------------------------------------------------------- 17.2 bounds
def test_delta_curve_huge_n_orders_is_refused_at_once():
    """Before: n_orders=2e8 passed the memory guard and ran for > 300 s."""
    code = (
        "from rmthess.landscape import delta_curve\n"
        "try:\n    delta_curve([1.0, 2.0, 3.0], n_orders=2 * 10**8)\n"
        "except ValueError as e:\n    print('refused:', e)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": root}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert "refused: n_orders must be an integer <= 1000000" in out.stdout, out.stderr


def test_delta_expected_bounds_its_work_from_the_arguments():
    """Before: 2*10^5 losses asked for 4e10 evaluations (tens of minutes) with no error."""
    import time

    from rmthess.landscape import delta_expected

    x = np.random.default_rng(0).random(200_001)
    t = time.perf_counter()
    with pytest.raises(ValueError, match="k: the exact upper bound costs O\\(n\\) per k"):
        delta_expected(x)
    assert time.perf_counter() - t < 5
    e = delta_expected(x, k=[1, 100])  # a few k: fine; E Delta_k^2 = S^2/(k(k+1)) exactly
    np.testing.assert_allclose(e.mean_sq, np.var(x, ddof=1) / np.array([2, 10100]), rtol=1e-12)


def _bomb(path, n_labels=7, zeros=2**27):
    co = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip container
    parts = [co.compress(struct.pack(">II", 0x801, n_labels) + bytes(n_labels))]
    block = bytes(2**22)
    parts += [co.compress(block) for _ in range(zeros // len(block))]
    path.write_bytes(b"".join(parts) + co.flush())


def test_gzip_bomb_is_refused_without_decompressing_it(tmp_path):
    """Before: the whole stream (here 128 MiB, 3 GB in the audit) was decompressed first."""
    _bomb(tmp_path / "labels.gz")
    img = tmp_path / "images"
    img.write_bytes(struct.pack(">IIII", 0x803, 7, 2, 2) + bytes(28))
    assert (tmp_path / "labels.gz").stat().st_size < 2**20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="at least .* unexpected bytes after the data"):
            load_idx(img, tmp_path / "labels.gz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * 2**20, peak


def test_idx_header_promising_too_much_is_refused_before_reading(tmp_path):
    lab = tmp_path / "l"
    lab.write_bytes(struct.pack(">II", 0x801, 2) + bytes(2))
    img = tmp_path / "i"
    img.write_bytes(struct.pack(">IIII", 0x803, 2, 2**31, 2**31) + bytes(100))
    with pytest.raises(ValueError, match="GiB"):
        load_idx(img, lab)


def test_one_label_of_a_billion_is_refused(tmp_path):
    """Before: n_classes = 10^9 was accepted (one-hot targets and output layers later)."""
    path = tmp_path / "big.npz"
    np.savez(path, X=np.ones((3, 2)), y=np.array([0, 1, 10**9]))
    with pytest.raises(ValueError, match=f"MAX_CLASSES\\) = \\[0, {MAX_CLASSES}\\).*3 distinct"):
        load_npz(path)
    with pytest.raises(ValueError, match="n_classes"):
        Dataset(np.ones((2, 2)), [0, 1], n_classes=10**9)


def test_landscape_small_n_fails_before_training(capsys):
    """Before: n = 100..119 passed the check and failed in fit_rate after training."""
    from rmthess.landscape import landscape_experiment

    with pytest.raises(ValueError, match="k_min must be at most n/10 - 2"):
        landscape_experiment(digits().subset(110), hidden=(4,), layers=(1,), epochs=1)
    _one_line_error(["landscape", "--n", "3"], capsys, "n must be an integer >= 120")
    _one_line_error(["landscape", "--limit", "3"], capsys, "use --n")


# ----------------------------------------------------------------------------- 17.3 npz faults
def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_faults_are_one_clear_error(tmp_path):
    """Before: truncated / bad CRC raised zipfile.BadZipFile tracebacks."""
    good = _npz(tmp_path / "g.npz", X=np.arange(40.0).reshape(10, 4), y=np.arange(10) % 3)
    data = good.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.npz: not a readable .npz archive"):
        load_npz(cut)
    crc = tmp_path / "crc.npz"
    i = data.index(b"\x93NUMPY") + 200  # a byte of X's data (stored, not compressed)
    crc.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :])
    with pytest.raises(ValueError, match="crc.npz: member 'X' cannot be read .*CRC"):
        load_npz(crc)
    empty = _npz(tmp_path / "e.npz", X=np.ones((0, 4)), y=np.zeros(0, int))
    with pytest.raises(ValueError, match="e.npz: 'X' holds no samples"):
        load_npz(empty)
    wrap = _npz(tmp_path / "u.npz", X=np.ones((2, 2)), y=np.array([1, 2**64 - 1], np.uint64))
    with pytest.raises(ValueError, match="18446744073709551615"):
        load_npz(wrap)


def _npy_bytes(shape, dtype="<f8", data=b""):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue() + data


def test_npz_huge_members_are_refused_from_their_headers(tmp_path, monkeypatch):
    """A .npy header promising 8 PiB, and a zip directory declaring more than the RAM:
    refused before any data is read (before: np.load tried to allocate the array)."""
    path = tmp_path / "hdr.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("X.npy", _npy_bytes((2**50, 1024), data=bytes(64)))
        zf.writestr("y.npy", _npy_bytes((2,), "<i8", bytes(16)))
    with pytest.raises(ValueError, match="hdr.npz: member 'X' is truncated or corrupt"):
        load_npz(path)
    # a zip directory declaring ~4 GiB for X.npy, on a machine of 1 GiB
    import rmthess._checks

    path = _npz(tmp_path / "dir.npz", X=np.ones((2, 2)), y=np.zeros(2, int))
    raw = bytearray(path.read_bytes())
    cd = raw.index(b"PK\x01\x02")  # first central directory entry: X.npy
    raw[cd + 24 : cd + 28] = struct.pack("<I", 2**32 - 16)  # its uncompressed size
    path.write_bytes(bytes(raw))
    monkeypatch.setattr(rmthess._checks, "physical_memory", lambda: 2**30)
    with pytest.raises(ValueError, match="dir.npz: member 'X' \\(declared 4294967280 bytes"):
        load_npz(path)


def test_missing_or_directory_data_paths_are_one_line(tmp_path, capsys):
    """Before: a missing .npz gave a FileNotFoundError traceback."""
    for cmd in ("landscape", "curvature"):
        _one_line_error([cmd, "--data", str(tmp_path / "no.npz")], capsys, "no such file")
        _one_line_error([cmd, "--data", str(tmp_path)], capsys, "is a directory")
        (tmp_path / "d.npz").mkdir(exist_ok=True)
        _one_line_error([cmd, "--data", str(tmp_path / "d.npz")], capsys, "is a directory")


# ----------------------------------------------------------------------------- 17.3 audit
def test_hessian_bound_audit_bad_inputs_are_one_line():
    """Before: y of the wrong length was accepted; a zero model raised 'All-NaN slice';
    weights x1e100 raised a LinAlgError."""
    torch = pytest.importorskip("torch")
    from rmthess.landscape import hessian_bound_audit, relu_mlp

    ds = digits().subset(50)
    with pytest.raises(ValueError, match=r"y has shape \(47,\)"):
        hessian_bound_audit(relu_mlp(64, 10, 4, 3), (ds.X, ds.y[:-3]))
    zero = relu_mlp(64, 10, 4, 3, dtype=torch.float64)
    big = relu_mlp(64, 10, 4, 3, dtype=torch.float64)
    with torch.no_grad():
        for p, q in zip(zero.parameters(), big.parameters(), strict=True):
            p.zero_()
            q.mul_(1e100)
    with pytest.raises(ValueError, match="every H_i is 0"):
        hessian_bound_audit(zero, ds, samples=5)
    with pytest.raises(ValueError, match="float64 cannot compute them"):
        hessian_bound_audit(big, ds, samples=5)


# ----------------------------------------------------------------------------- 17.4 CLI
def test_landscape_help_gives_defaults_and_x_key(capsys):
    assert main(["landscape", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in ("default 4,8,16,32,64", "(default 1,3,5)", "default 100", "default 10",
                 "--x-key", "--y-key", "--n N"):  # fmt: skip
        assert text in out, text
    assert main(["curvature", "--help"]) == 0
    assert "--x-key" in capsys.readouterr().out


def test_x_key_reaches_the_loader_from_both_clis(tmp_path, capsys):
    """Before: the error said 'pass x_key=' and no CLI could."""
    from rmthess.cli import build_parser
    from rmthess.data import load_from_args

    path = _npz(tmp_path / "k.npz", feats=np.arange(24.0).reshape(6, 4), cls=np.arange(6) % 2)
    err = _one_line_error(["curvature", "--data", str(path)], capsys, "--x-key")
    assert "pass x_key= (command line: --x-key)" in err
    parser = build_parser()
    for cmd in ("curvature", "landscape"):
        args = parser.parse_args([cmd, "--data", str(path), "--x-key", "feats", "--y-key", "cls"])
        ds = load_from_args(args)
        assert ds.meta["x_key"] == "feats" and np.array_equal(ds.y, np.arange(6) % 2)


def test_class_count_from_the_command_line_is_bounded(capsys):
    """Before: --data gaussian --C 1e9 was accepted (a 10^9-output model followed)."""
    _one_line_error(["curvature", "--data", "gaussian", "--C", "1e9"], capsys, "C must be")


def test_one_meaning_of_layers_and_n(capsys):
    _one_line_error(["landscape", "--layers", "1,3"], capsys, "use --depths")
    _one_line_error(["landscape", "--fixed-layers", "3"], capsys, "use --fixed-depth")


def test_bench_landscape_stage_bar_goes_to_stderr(capsys):
    from rmthess.bench.landscape import STAGES, _stages

    bar = _stages(True)
    bar.update(len(STAGES))
    bar.close()
    assert "bench landscape" in capsys.readouterr().err
    assert _stages(False).disable


# ----------------------------------------------------------------------------- issue 16: as_xy
def test_as_xy_gives_one_form_for_every_container():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    X = np.arange(20.0).reshape(10, 2)
    y = np.arange(10) % 3
    Xt, yt = torch.tensor(X), torch.tensor(y)
    forms = [
        (X, y),
        [Xt, yt],
        Dataset(X, y),
        TensorDataset(Xt, yt),
        DataLoader(TensorDataset(Xt, yt), batch_size=3),
        [(Xt[:4], yt[:4]), (Xt[4:], yt[4:])],
    ]
    for data in forms:
        a, b = as_xy(data)
        np.testing.assert_array_equal(a, X)
        np.testing.assert_array_equal(b, y)
        assert as_dataset(data).n_classes == 3
    with pytest.raises(TypeError, match="data must be"):
        as_xy(3)
    with pytest.raises(ValueError, match="empty"):
        as_xy([])
    with pytest.raises(ValueError, match="one entry per row"):
        as_xy((X, y[:4]))


def test_landscape_functions_take_any_container():
    torch = pytest.importorskip("torch")
    from rmthess.landscape import per_sample_curvature, relu_mlp, train_mlp

    ds = digits().subset(60)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.tensor(ds.X), torch.tensor(ds.y)), batch_size=16
    )
    a = train_mlp(ds, 4, 2, epochs=1)
    b = train_mlp(loader, 4, 2, epochs=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    m = relu_mlp(64, 10, 4, 2, dtype=torch.float64)
    g1 = per_sample_curvature(m, ds, kind="ggn").norm
    g2 = per_sample_curvature(m, loader, kind="ggn").norm
    np.testing.assert_array_equal(g1, g2)
    from rmthess.landscape import per_sample_losses

    samples = torch.utils.data.TensorDataset(torch.tensor(ds.X), torch.tensor(ds.y))
    ref = per_sample_losses(m, "ce", ds)  # before: TypeError "len() of a 0-d tensor"
    np.testing.assert_array_equal(per_sample_losses(m, "ce", samples), ref)
    np.testing.assert_array_equal(per_sample_losses(m, "ce", loader), ref)


def test_data_seeds_keep_their_streams():
    """rmthess._random.rng(seed) is numpy.random.default_rng(seed): same subsets/draws."""
    from rmthess.data import gaussian

    g = gaussian(3, 4, 7, seed=5)
    ref = np.random.default_rng(5)
    np.testing.assert_array_equal(g.X, ref.standard_normal((7, 4)))
    np.testing.assert_array_equal(g.y, ref.integers(0, 3, size=7))
    json.dumps(g.to_dict(), allow_nan=False)
    assert gzip  # imported for the bomb's format


def test_classes_and_standardize_options_give_the_report_data_sets(capsys):
    """--classes K --standardize: the digits 0 .. K-1 standardised on the samples used (the
    report's theory-on-data sets), from both CLIs; K above the data's classes is one line."""
    from rmthess.cli import build_parser
    from rmthess.data import Dataset, digits, load_from_args

    full = digits()
    keep = full.y < 5
    want = Dataset(full.X[keep], full.y[keep], 5).standardize()
    parser = build_parser()
    for cmd in ("curvature", "landscape"):
        args = parser.parse_args([cmd, "--data", "digits", "--classes", "5", "--standardize"])
        ds = load_from_args(args)
        assert ds.n_classes == 5 and ds.n == int(keep.sum())
        np.testing.assert_allclose(ds.X, want.X, atol=1e-12)
        np.testing.assert_array_equal(ds.y, want.y)
        np.testing.assert_allclose(np.asarray(ds.X).mean(0), 0, atol=1e-12)
    _one_line_error(["curvature", "--data", "digits", "--classes", "11"], capsys, "--classes")
    _one_line_error(["curvature", "--data", "digits", "--classes", "1"], capsys, "classes")
