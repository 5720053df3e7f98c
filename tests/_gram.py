"""Shared oracle of the linear-model input tests: the Hessian blocks of a linear model on a
data matrix, built in numpy from the definition (independent of rmthess.theory)."""

from __future__ import annotations

import warnings

import numpy as np


def blocks(X, W, case="linear-ce"):
    """(C, C) array of (1/d)||H_kl||_F^2, H_kl = (1/N) sum_i A_i[k,l] x_i x_i^T, by the Gram
    route in numpy (independent of the code under test)."""
    N, d = X.shape
    C = W.shape[0]
    if case == "linear-mse":
        A = np.broadcast_to(np.eye(C), (N, C, C)).reshape(N, C * C)
    else:
        z = X @ W.T
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        A = (np.eye(C)[None] * p[:, :, None] - p[:, :, None] * p[:, None, :]).reshape(N, C * C)
    S = (X @ X.T) ** 2
    return (np.sum(A * (S @ A), 0) / (d * N * N)).reshape(C, C)


def diag_off(F):
    C = F.shape[0]
    return np.mean(np.diag(F)), np.mean(F[~np.eye(C, dtype=bool)])


def quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*a, **k)
