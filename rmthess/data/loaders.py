"""The one table of named data sets, :func:`load`, and the command-line data arguments.

Every CLI that takes ``--data`` calls :func:`add_data_arguments` on its parser and
:func:`load_from_args` on the parsed arguments, so ``--data``, ``--x-key``/``--y-key``,
``--idx-images``/``--idx-labels``, the synthetic ``--C``/``--d``/``--N``/``--clusters`` and
``--n`` mean the same everywhere. ``--n N`` always means: a stratified random subset of
``N`` samples (``Dataset.subset``, seed ``--seed``), whatever the source.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rmthess.data.dataset import MAX_CLASSES, Dataset
from rmthess.data.files import digits
from rmthess.data.idx import load_idx
from rmthess.data.npz import load_npz
from rmthess.data.synthetic import clustered, gaussian

if TYPE_CHECKING:
    import argparse

__all__ = ["DATASETS", "LOADERS", "add_data_arguments", "load", "load_from_args"]


@dataclass(frozen=True)
class Loader:
    """One named data set: its loader, whether it holds image pixels, what it is, and how
    the command-line arguments map to the loader's keywords."""

    function: Callable[..., Dataset]
    pixels: bool
    help: str
    cli_kwargs: Callable[[Any], dict]  # argparse.Namespace -> dict of keywords


def _none(args):
    return {}


def _synthetic(args, **extra):
    return dict(C=args.C, d=args.d, N=args.N, seed=getattr(args, "seed", 0), **extra)


LOADERS = {
    "digits": Loader(digits, True, "scikit-learn's 8x8 digits (N=1797, d=64, C=10)", _none),
    "gaussian": Loader(gaussian, False, "N(0, I) inputs, random labels (--C --d --N)", _synthetic),
    "clustered": Loader(
        clustered,
        False,
        "K = clusters x C clusters on the unit sphere (--C --d --N --clusters)",
        lambda a: _synthetic(a, clusters=a.clusters),
    ),
    "idx": Loader(
        load_idx,
        True,
        "MNIST-format files (--idx-images --idx-labels)",
        lambda a: dict(images=a.idx_images, labels=a.idx_labels),
    ),
    ".npz": Loader(
        load_npz,
        True,
        "a NumPy archive of X and y (--x-key --y-key)",
        lambda a: dict(path=a.data, x_key=a.x_key, y_key=a.y_key),
    ),
}
"""The data sets by name (``".npz"`` stands for any path ending in ``.npz``)."""
DATASETS = tuple(k for k in LOADERS if not k.startswith("."))
"""Names :func:`load` accepts besides a path ending in ``.npz``."""


def _entry(name: str) -> str:
    if name in LOADERS and not name.startswith("."):
        return name
    if name.lower().endswith(".npz"):
        return ".npz"
    raise ValueError(
        f"unknown data set {name!r}; allowed: {', '.join(DATASETS)}, or a path ending in .npz"
    )


def load(name: str | os.PathLike[str], **kw: Any) -> Dataset:
    """Load a data set by name: ``name`` in :data:`DATASETS` or a path ending in ``.npz``;
    the keywords go to that loader unchanged.

    >>> load("gaussian", C=3, d=4, N=6, seed=1)
    Dataset('gaussian', N=6, d=4, n_classes=3)

    ``load("digits", scale=False)``, ``load("idx", images=path1, labels=path2, limit=1000)``,
    ``load("data/train.npz", x_key="images")``. An unknown name raises ``ValueError``
    listing the allowed ones; a keyword the loader lacks raises ``TypeError``.
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise TypeError(f"name must be a str (data set name or .npz path), got {name!r}")
    key = _entry(name)
    if key == ".npz":
        return load_npz(name, **kw)
    return LOADERS[key].function(**kw)


# ----------------------------------------------------------------------------- command line
_NPZ_HELP = ".npz: name of the array of {} (default: the first of {}, ...)"


def add_data_arguments(
    parser: argparse.ArgumentParser, *, default: str = "digits", n_min: int = 2
) -> None:
    """Add the shared data arguments to an ``argparse`` parser (an argument group "data").

    ``--data`` (default ``default``), ``--x-key``, ``--y-key``, ``--idx-images``,
    ``--idx-labels``, ``--C``, ``--d``, ``--N``, ``--clusters``, ``--n`` (``>= n_min``),
    ``--classes K`` (the samples of classes ``0 .. K-1``) and ``--standardize``. The CLI adds
    its own ``--seed`` (used for synthetic data and ``--n``; 0 without one).
    """
    from rmthess._checks import int_arg

    names = " | ".join(DATASETS)
    g = parser.add_argument_group("data")
    g.add_argument(
        "--data",
        default=None,
        metavar="NAME|PATH.npz",
        help=f"{names} | a path ending in .npz (default: {default}; idx when --idx-images "
        "is given)",
    )
    g.add_argument("--x-key", default=None, help=_NPZ_HELP.format("inputs", "X, x, x_train"))
    g.add_argument("--y-key", default=None, help=_NPZ_HELP.format("labels", "y, Y, y_train"))
    g.add_argument("--idx-images", default=None, metavar="PATH", help="idx: MNIST-format images")
    g.add_argument("--idx-labels", default=None, metavar="PATH", help="idx: MNIST-format labels")
    synth = "gaussian/clustered: "
    g.add_argument(
        "--C", default=10, type=int_arg("C", 2, MAX_CLASSES), help=synth + "classes (default 10)"
    )
    g.add_argument("--d", default=64, type=int_arg("d", 1), help=synth + "input dim (default 64)")
    g.add_argument("--N", default=500, type=int_arg("N", 1), help=synth + "samples (default 500)")
    g.add_argument(
        "--clusters",
        default=2,
        type=int_arg("clusters", 1),
        help="clustered: per class (default 2)",
    )
    g.add_argument(
        "--n",
        default=None,
        type=int_arg("n", n_min),
        metavar="N",
        help=f"use a stratified random subset of N >= {n_min} samples (seed --seed; default: all)",
    )
    g.add_argument(
        "--classes",
        default=None,
        type=int_arg("classes", 2, MAX_CLASSES),
        metavar="K",
        help="keep the samples of classes 0 .. K-1 only (K >= 2; applied before --n)",
    )
    g.add_argument(
        "--standardize",
        action="store_true",
        help="standardise every feature (mean 0, SD 1; constant ones stay 0) on the samples "
        "used, after --classes and --n",
    )
    parser.set_defaults(_data_default=default)


def data_source(args) -> str:
    """The table entry the arguments select (``"digits"``, ..., ``".npz"``); ``ValueError``
    for an unknown name or IDX arguments that do not go together. No file is read."""
    name = args.data
    idx = (args.idx_images, args.idx_labels)
    if (idx[0] is None) != (idx[1] is None):
        raise ValueError("--idx-images and --idx-labels go together")
    if name is None:
        name = "idx" if idx[0] is not None else args._data_default
    path = name not in DATASETS  # a name of the table, whatever the current directory holds
    if path and os.path.isdir(name):
        raise ValueError(f"--data: {name!r} is a directory, not a data set name or .npz file")
    if path and os.path.isfile(name) and not name.lower().endswith(".npz"):
        raise ValueError(
            f"--data: {name!r} is a file but not a .npz archive (IDX files go with "
            "--idx-images/--idx-labels)"
        )
    try:
        key = _entry(name)
    except ValueError as exc:
        raise ValueError(f"--data: {exc}") from None
    if key == "idx" and idx[0] is None:
        raise ValueError("--data idx needs --idx-images PATH and --idx-labels PATH")
    if key != "idx" and idx[0] is not None:
        raise ValueError(f"--idx-images/--idx-labels go with --data idx, not --data {name}")
    if key != ".npz" and (args.x_key is not None or args.y_key is not None):
        raise ValueError(f"--x-key/--y-key go with a .npz path, not --data {name}")
    return key


def load_from_args(args: argparse.Namespace) -> Dataset:
    """The data set the shared arguments describe (after :func:`add_data_arguments`).

    File errors become one ``ValueError`` naming the option (``--data: no such file ...``);
    ``--n`` above the data set's size is refused; the subset is drawn with ``--seed``. Order:
    load, ``--classes``, ``--n``, ``--standardize`` (on the samples used).
    """
    key = data_source(args)
    kw = LOADERS[key].cli_kwargs(args)
    opt = "--idx-images/--idx-labels" if key == "idx" else "--data"
    try:
        ds = LOADERS[key].function(**kw)
    except FileNotFoundError as exc:
        raise ValueError(f"{opt}: no such file {exc.filename!r}") from None
    except OSError as exc:
        raise ValueError(f"{opt}: cannot read {exc.filename!r} ({exc.strerror})") from None
    classes = getattr(args, "classes", None)
    if classes is not None:
        if classes > ds.n_classes:
            raise ValueError(
                f"--classes must be at most the data set's {ds.n_classes} classes, got {classes}"
            )
        keep = ds.y < classes
        ds = Dataset(ds.X[keep], ds.y[keep], classes, f"{ds.name} (classes 0-{classes - 1})")
    if args.n is not None:
        if args.n > ds.n:
            raise ValueError(f"--n must be at most the data set's {ds.n} samples, got {args.n}")
        ds = ds.subset(args.n, seed=getattr(args, "seed", 0))
    if getattr(args, "standardize", False):
        ds = ds.standardize()
    return ds
