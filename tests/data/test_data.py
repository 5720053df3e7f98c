"""rmthess.data: loaders (shapes, distributions, file formats), the Dataset container
(validation, subset/split/standardize, torch views) and the layer's light import.

Statistical checks use fixed seeds and a 5-standard-error band derived from the sample size
(a correct generator fails it with probability ~6e-7 per check; the seeds are fixed, so the
tests are deterministic)."""

import gzip
import json
import math
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import gammaln

from rmthess.data import (
    DATASETS,
    Dataset,
    clustered,
    digits,
    gaussian,
    load,
    load_idx,
    load_npz,
)


# ----------------------------------------------------------------------------- digits
def test_digits_shape_range_and_pixel_order():
    from sklearn.datasets import load_digits

    ds = digits()
    assert (ds.n, ds.d, ds.n_classes, len(ds)) == (1797, 64, 10, 1797)
    assert ds.X.dtype == np.float64 and ds.y.dtype == np.int64
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0
    assert np.array_equal(ds.X * 16, np.round(ds.X * 16))  # pixels are k / 16
    assert ds.class_counts().sum() == 1797 and ds.class_counts().min() >= 170
    # the row-major flattening of sklearn's (8, 8) images, a separate array of the bunch
    images = load_digits().images
    assert np.array_equal(ds.X[5].reshape(8, 8), images[5] / 16)
    raw = digits(scale=False)
    assert raw.X.max() == 16.0 and np.array_equal(raw.y, ds.y)
    assert repr(ds) == "Dataset('digits', N=1797, d=64, n_classes=10)"


# ----------------------------------------------------------------------------- gaussian
def test_gaussian_moments_labels_and_seeds():
    C, d, N = 10, 64, 2000
    ds = gaussian(C, d, N, seed=3)
    assert ds.X.shape == (N, d) and ds.y.shape == (N,) and ds.n_classes == C
    n = N * d
    assert abs(ds.X.mean()) < 5 / math.sqrt(n)  # SE of the mean of n iid N(0,1)
    assert abs(ds.X.var() - 1) < 5 * math.sqrt(2 / n)  # SE of the variance: sqrt(2/n)
    # columns uncorrelated: off-diagonal sample covariances have SE 1/sqrt(N)
    cov = np.cov(ds.X, rowvar=False)
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 5.5 / math.sqrt(N)  # 2016 entries
    counts = ds.class_counts()
    assert counts.min() > 0  # P(a class is empty) = 10 * 0.9^2000
    p = 1 / C
    assert np.abs(counts - N * p).max() < 5 * math.sqrt(N * p * (1 - p))
    again = gaussian(C, d, N, seed=3)
    assert np.array_equal(again.X, ds.X) and np.array_equal(again.y, ds.y)
    other = gaussian(C, d, N, seed=4)
    assert not np.array_equal(other.X, ds.X) and not np.array_equal(other.y, ds.y)
    assert ds.meta["seed"] == 3 and ds.meta["source"] == "gaussian"


def test_gaussian_balanced_counts_exact():
    ds = gaussian(7, 5, 70, seed=1, balanced=True)
    assert np.array_equal(ds.class_counts(), np.full(7, 10))
    assert np.array_equal(ds.X, gaussian(7, 5, 70, seed=1).X)  # X drawn before the labels
    assert not np.array_equal(ds.y, np.sort(ds.y))  # shuffled, not sorted by class
    with pytest.raises(ValueError, match="divisible"):
        gaussian(7, 5, 71, balanced=True)


@pytest.mark.parametrize(
    "kw, exc, msg",
    [
        ({"C": 0}, ValueError, "C must be"),
        ({"C": 2.5}, ValueError, "C must be an integer"),
        ({"d": "3"}, TypeError, "d must be"),
        ({"N": 0}, ValueError, "N must be"),
        ({"seed": -1}, ValueError, "seed must be"),
        ({"balanced": "yes"}, TypeError, "balanced"),
        ({"N": 10**9, "d": 10**9}, ValueError, "RAM"),
    ],
)
def test_gaussian_bad_arguments(kw, exc, msg):
    args = {"C": 3, "d": 4, "N": 6} | kw
    with pytest.raises(exc, match=msg):
        gaussian(args.pop("C"), args.pop("d"), args.pop("N"), **args)


# ----------------------------------------------------------------------------- clustered
def test_clustered_geometry():
    C, d, N, k, noise = 10, 64, 1003, 3, 0.05
    ds = clustered(C, d, N, clusters=k, noise=noise, seed=2)
    centers, ids = ds.meta["centers"], ds.meta["cluster_ids"]
    K = k * C
    assert centers.shape == (K, d) and ds.meta["K"] == K
    np.testing.assert_allclose(np.linalg.norm(centers, axis=1), 1.0, rtol=0, atol=1e-12)
    # centers uniform on the sphere: ||sum of K of them||^2 / K ~ chi2_d / d, sd sqrt(2/d)
    assert abs(np.sum(centers.sum(0) ** 2) / K - 1) < 5 * math.sqrt(2 / d)
    assert np.array_equal(ds.y, ids // k)  # class of a point = class of its cluster
    sizes = np.bincount(ids, minlength=K)
    assert sizes.sum() == N and sizes.max() - sizes.min() == 1  # 1003 = 33 * 30 + 13
    dist = np.linalg.norm(ds.X[:, None, :] - centers[None], axis=2)
    assert np.array_equal(dist.argmin(axis=1), ids)  # nearest center is its own
    own = dist[np.arange(N), ids]
    # squared distance = noise^2 chi2_d / d: mean noise^2, SE noise^2 sqrt(2/d) / sqrt(N)
    assert abs(np.mean(own**2) - noise**2) < 5 * noise**2 * math.sqrt(2 / d / N)
    # distance = noise chi_d / sqrt(d), E chi_d = sqrt(2) Gamma((d+1)/2) / Gamma(d/2)
    mu_chi = math.sqrt(2) * math.exp(gammaln((d + 1) / 2) - gammaln(d / 2))
    se = noise * math.sqrt((d - mu_chi**2) / d / N)
    assert abs(own.mean() - noise * mu_chi / math.sqrt(d)) < 5 * se


def test_clustered_zero_noise_seed_and_errors():
    ds = clustered(3, 8, 12, clusters=2, noise=0, seed=5)
    assert np.array_equal(ds.X, ds.meta["centers"][ds.meta["cluster_ids"]])
    assert np.array_equal(ds.class_counts(), [4, 4, 4])
    assert np.array_equal(clustered(3, 8, 12, seed=5).meta["centers"], ds.meta["centers"])
    assert not np.array_equal(clustered(3, 8, 12, seed=6).X, clustered(3, 8, 12, seed=5).X)
    json.dumps(ds.to_dict())
    with pytest.raises(ValueError, match="N must be >= K = clusters \\* C = 6"):
        clustered(3, 8, 5, clusters=2)
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        clustered(3, 8, 12, noise=-0.1)
    with pytest.raises(ValueError, match="noise"):
        clustered(3, 8, 12, noise=float("nan"))
    with pytest.raises(TypeError, match="noise"):
        clustered(3, 8, 12, noise="0.1")
    with pytest.raises(ValueError, match="clusters"):
        clustered(3, 8, 12, clusters=0)


# ----------------------------------------------------------------------------- IDX files
def _write_idx(path, magic, array, compress=False, cut=0, extra=b""):
    head = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    data = (head + array.astype(np.uint8).tobytes() + extra)[: -cut or None]
    (gzip.open if compress else open)(path, "wb").write(data)


@pytest.fixture
def idx_pair():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(7, 5, 4)), np.array([3, 0, 9, 1, 1, 4, 2])


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, idx_pair, compress):
    images, labels = idx_pair
    ip, lp = tmp_path / "img-idx3-ubyte", tmp_path / "lab-idx1-ubyte"
    _write_idx(ip, 0x803, images, compress)
    _write_idx(lp, 0x801, labels, compress)
    ds = load_idx(ip, lp)
    assert ds.X.shape == (7, 20) and ds.n_classes == 10 and ds.name == "img-idx3-ubyte"
    np.testing.assert_allclose(ds.X * 255, images.reshape(7, 20), rtol=0, atol=1e-12)
    assert np.array_equal(ds.y, labels) and ds.X.max() <= 1
    raw = load_idx(str(ip), str(lp), scale=False, limit=3)
    assert np.array_equal(raw.X, images[:3].reshape(3, 20)) and np.array_equal(raw.y, labels[:3])
    assert raw.n_classes == 10  # from the whole label file, not the first 3 labels
    assert load_idx(ip, lp, limit=100).n == 7


def test_idx_errors(tmp_path, idx_pair):
    images, labels = idx_pair
    ip, lp, bad = tmp_path / "i", tmp_path / "l", tmp_path / "bad"
    _write_idx(ip, 0x803, images)
    _write_idx(lp, 0x801, labels)
    with pytest.raises(
        ValueError, match="i: wrong magic number 0x00000803 for an IDX label file.*swapped"
    ):
        load_idx(lp, ip)
    _write_idx(bad, 0x803, images, cut=1)
    with pytest.raises(ValueError, match="truncated IDX image file"):
        load_idx(bad, lp)
    _write_idx(bad, 0x801, labels, compress=True, cut=0)
    data = open(bad, "rb").read()
    open(bad, "wb").write(data[:-9])  # cuts the gzip stream itself
    with pytest.raises(ValueError, match="gzip"):
        load_idx(ip, bad)
    _write_idx(bad, 0x801, labels[:6])
    with pytest.raises(ValueError, match="7 images.*6 labels"):
        load_idx(ip, bad)
    _write_idx(bad, 0x801, labels, extra=b"\0")
    with pytest.raises(ValueError, match="1 unexpected bytes"):
        load_idx(ip, bad)
    open(bad, "wb").write(b"\0\0")
    with pytest.raises(ValueError, match="truncated"):
        load_idx(ip, bad)
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        load_idx(tmp_path / "nothing-here", lp)
    with pytest.raises(TypeError, match="images must be a path"):
        load_idx(3, lp)
    with pytest.raises(ValueError, match="limit"):
        load_idx(ip, lp, limit=0)


# ----------------------------------------------------------------------------- npz files
def test_npz_round_trip_and_key_guessing(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(6, 3, 4)).astype(np.uint8)
    labels = np.array([0, 2, 1, 2, 0, 1], dtype=np.int32)
    path = tmp_path / "set.npz"
    np.savez(path, images=images, labels=labels, other=np.zeros(2))
    ds = load_npz(path)
    assert ds.meta["x_key"] == "images" and ds.meta["y_key"] == "labels"
    assert np.array_equal(ds.X, images.reshape(6, 12)) and np.array_equal(ds.y, labels)
    assert ds.n_classes == 3 and load_npz(path, n_classes=5).n_classes == 5
    assert ds.name == "set" and load(str(path)).n == 6
    path2 = tmp_path / "keys.npz"
    np.savez(path2, feats=images[:, 0], cls=labels[:, None].astype(float))
    ds2 = load_npz(path2, x_key="feats", y_key="cls")
    assert np.array_equal(ds2.X, images[:, 0]) and np.array_equal(ds2.y, labels)
    with pytest.raises(ValueError, match=r"x_key; the file holds \['feats', 'cls'\]"):
        load_npz(path2)
    with pytest.raises(ValueError, match=r"no array 'z'.*\['feats', 'cls'\]"):
        load_npz(path2, x_key="feats", y_key="z")


def test_npz_errors(tmp_path):
    path = tmp_path / "onehot.npz"
    np.savez(path, X=np.ones((4, 2)), y=np.eye(4))
    with pytest.raises(ValueError, match="one-hot"):
        load_npz(path)
    np.savez(path, X=np.ones(4), y=np.zeros(4, int))
    with pytest.raises(ValueError, match=">= 2 dims"):
        load_npz(path)
    np.savez(path, X=np.ones((4, 2)), y=np.zeros(3, int))
    with pytest.raises(ValueError, match=r"\(4, 2\).*\(3,\)"):
        load_npz(path)
    npy = tmp_path / "a.npy"
    np.save(npy, np.ones(3))
    with pytest.raises(ValueError, match="not an .npz"):
        load_npz(npy)
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "missing.npz")


def test_load_dispatch():
    assert DATASETS == ("digits", "gaussian", "clustered", "idx")
    assert load("digits").n == 1797
    g = load("gaussian", C=3, d=4, N=6, seed=1)
    assert np.array_equal(g.X, gaussian(3, 4, 6, seed=1).X)
    assert load("clustered", C=2, d=3, N=8).meta["K"] == 4
    with pytest.raises(ValueError, match="allowed: digits, gaussian, clustered, idx"):
        load("mnist")
    with pytest.raises(TypeError):
        load("digits", nope=1)


# ----------------------------------------------------------------------------- Dataset
def test_dataset_validation():
    X = np.zeros((5, 3))
    y = np.array([0, 1, 2, 1, 0])
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="X must be finite; row 3"):
        Dataset(X, y, 3)
    X[3, 1] = np.inf
    with pytest.raises(ValueError, match="X must be finite; row 3"):
        Dataset(X, y, 3)
    X[3, 1] = 0
    with pytest.raises(ValueError, match=r"X has shape \(5, 3\) and y has shape \(4,\)"):
        Dataset(X, y[:4], 3)
    with pytest.raises(ValueError, match=r"labels in \[0, n_classes\) = \[0, 2\); y\[2\] = 2"):
        Dataset(X, y, 2)
    with pytest.raises(ValueError, match=r"y\[0\] = -1"):
        Dataset(X, y - 1, 3)
    with pytest.raises(ValueError, match=r"y\[0\] = -5"):
        Dataset(X, y * 0 - 5)  # n_classes inferred: the label is named, not n_classes
    with pytest.raises(TypeError, match="y must hold integer"):
        Dataset(X, y + 0.5, 3)
    with pytest.raises(ValueError, match="X must be a 2-D"):
        Dataset(X[0], y[:1], 3)
    with pytest.raises(TypeError, match="X must hold real"):
        Dataset(X.astype(complex), y, 3)
    with pytest.raises(ValueError, match="n_classes"):
        Dataset(X, y * 0, 0)
    with pytest.raises(ValueError, match="cluster_ids"):
        Dataset(X, y, 3, meta={"cluster_ids": np.zeros(4)})
    assert Dataset(X, y.astype(float)).n_classes == 3  # integral floats, default max + 1
    with pytest.raises(ValueError, match="too large"):
        Dataset(X, y * 1e300)


def test_dataset_conversion_without_surprising_copies():
    X = np.arange(12.0).reshape(4, 3)
    y = np.array([0, 1, 1, 0])
    ds = Dataset(X, y, 2)
    assert np.shares_memory(ds.X, X) and np.shares_memory(ds.y, y)  # no copy needed
    assert not ds.X.flags.writeable and X.flags.writeable  # read-only view, caller's stays
    ds2 = Dataset(X.astype(np.float32).T.T[:, ::1], y.astype(np.int32), 2)
    assert ds2.X.dtype == np.float64 and ds2.y.dtype == np.int64
    assert ds2.X.flags.c_contiguous
    assert Dataset(np.asfortranarray(X), y, 2).X.flags.c_contiguous


def _unique_rows(draw_y, seed):
    """Data set whose row i starts with i (rows are unique) and has label y_i."""
    y = np.asarray(draw_y)
    X = np.column_stack([np.arange(len(y)), np.random.default_rng(seed).normal(size=len(y))])
    return Dataset(X, y, int(y.max()) + 1)


def _check_pairs(part: Dataset, whole: Dataset):
    rows = part.X[:, 0].astype(int)
    assert len(set(rows)) == part.n  # without replacement
    assert np.array_equal(part.X, whole.X[rows]) and np.array_equal(part.y, whole.y[rows])
    assert np.array_equal(part.meta["index"], rows)
    assert np.all(np.diff(rows) > 0)  # original order kept


def _check_strata(part: Dataset, whole: Dataset):
    # |n_c - n N_c / N| < 1, in integers
    n_c, N_c = part.class_counts(), whole.class_counts()
    assert np.all(np.abs(n_c * whole.n - part.n * N_c) < whole.n)


labels = st.lists(st.integers(0, 4), min_size=2, max_size=60)


@settings(max_examples=60, deadline=None)
@given(y=labels, frac=st.floats(0.01, 1.0), seed=st.integers(0, 2**32))
def test_subset_preserves_pairs_and_strata(y, frac, seed):
    ds = _unique_rows(y, seed)
    n = max(1, int(frac * ds.n))
    for stratified in (True, False):
        part = ds.subset(n, seed=seed, stratified=stratified)
        assert part.n == n and part.n_classes == ds.n_classes
        _check_pairs(part, ds)
        if stratified:
            _check_strata(part, ds)


@settings(max_examples=60, deadline=None)
@given(y=labels, frac=st.floats(0.05, 0.95), seed=st.integers(0, 2**32))
def test_split_partitions_and_stratifies(y, frac, seed):
    ds = _unique_rows(y, seed)
    n_test = round(frac * ds.n)
    if not 1 <= n_test <= ds.n - 1:
        with pytest.raises(ValueError, match="empty part"):
            ds.split(frac, seed=seed)
        return
    train, test = ds.split(frac, seed=seed)
    assert test.n == n_test and train.n + test.n == ds.n
    assert not set(train.meta["index"]) & set(test.meta["index"])
    for part in (train, test):
        _check_pairs(part, ds)
        _check_strata(part, ds)


def test_subset_composes_index_and_carries_cluster_ids():
    ds = clustered(4, 6, 40, seed=1)
    a = ds.subset(20, seed=1)
    b = a.subset(7, seed=2, stratified=False)
    assert np.array_equal(b.X, ds.X[b.meta["index"]])
    assert np.array_equal(b.meta["cluster_ids"], ds.meta["cluster_ids"][b.meta["index"]])
    assert np.array_equal(b.y, b.meta["cluster_ids"] // 2)
    with pytest.raises(ValueError, match="n must be an integer <= 40"):
        ds.subset(41)
    with pytest.raises(ValueError, match=r"test_fraction must be a number in \(0, 1\)"):
        ds.split(1.0)


def test_standardize():
    ds = digits()
    z = ds.standardize()
    const = ds.X.std(axis=0) == 0  # pixels that are 0 in every image
    assert const.any()
    np.testing.assert_allclose(z.X.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(z.X.std(axis=0)[~const], 1, rtol=1e-12)
    assert np.all(z.X[:, const] == 0)  # constant features map to 0, not NaN
    train, test = ds.split(0.3, seed=1)
    stats = train.standardize().meta["standardize"]
    zt = test.standardize(**stats)
    np.testing.assert_allclose(zt.X, (test.X - stats["mean"]) / stats["std"], rtol=1e-15)
    with pytest.raises(ValueError, match="std must be > 0"):
        test.standardize(mean=stats["mean"], std=np.zeros(64))
    with pytest.raises(ValueError, match=r"mean must have shape \(d,\) = \(64,\)"):
        test.standardize(mean=np.zeros(3))


def test_tensors_and_batches():
    torch = pytest.importorskip("torch")
    ds = gaussian(4, 3, 10, seed=0)
    X, y = ds.tensors()
    assert X.dtype == torch.float64 and y.dtype == torch.int64 and X.device.type == "cpu"
    assert np.array_equal(X.numpy(), ds.X) and np.array_equal(y.numpy(), ds.y)
    X[0, 0] = 99.0
    assert ds.X[0, 0] != 99.0  # tensors are copies
    X32, Y = ds.tensors(torch.float32, "cpu", one_hot=True)
    assert X32.dtype == torch.float32 and Y.dtype == torch.float32 and Y.shape == (10, 4)
    assert torch.all(Y.sum(1) == 1) and torch.equal(Y.argmax(1), y)
    with pytest.raises(TypeError, match="dtype must be a floating"):
        ds.tensors(torch.int32)
    with pytest.raises(ValueError, match="device must name"):
        ds.tensors(device="nowhere")
    batches = ds.batches(4)
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([b[0] for b in batches]), ds.tensors()[0])
    assert torch.equal(torch.cat([b[1] for b in batches]), y)
    assert len(ds.batches(100)) == 1 and ds.batches(3, one_hot=True)[0][1].shape == (3, 4)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        ds.batches(0)


def test_summaries_are_json_safe():
    ds = clustered(3, 4, 9, seed=0).standardize().subset(6)
    rec = ds.to_dict()
    json.dumps(rec)
    assert rec["N"] == 6 and rec["class_count_min"] == 2 and rec["meta_K"] == 3 * 2
    assert rec["meta_cluster_ids"] == "ndarray int64 (6,)"
    assert not any(isinstance(v, (dict, list, np.ndarray)) for v in rec.values())
    frame = ds.to_frame()
    assert len(frame) == 1 and frame.loc[0, "n_classes"] == 3


def test_import_is_light():
    code = (
        "import sys, rmthess.data; "
        "print(sorted(m for m in ('torch', 'sklearn', 'pandas', 'scipy') if m in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
