"""Exact block-diagonality of the MSE Hessian: linear-mse and output-mse.

Claim (paper Section 4, docs/theory.md section 2): with MSE loss the Hessian of a linear model
``W`` and the output-layer Hessian of a one-hidden-layer net ``V relu(W x)`` are exactly
block diagonal, ``H_kl = delta_kl (1/N) sum_i u_i u_i^T``, for every C, d, N and every
weight (no limit needed). The same blocks under CE loss are NOT zero.

Checks (independent route: ``torch.func.hessian`` of the real model and loss):
- max |off-diagonal block entry| / max |H| <= 1e-12 for several random instances;
- the diagonal blocks equal ``(1/N) X X^T`` (linear) and ``(1/N) h h^T`` (output) to 1e-12;
- contrast: with CE the off-diagonal blocks carry a visible fraction (> 1e-3) of the norm;
- the Gram-route simulation (rmthess.simulate) gives F_off == 0 exactly.
"""

from __future__ import annotations

import sys
import time

import torch
from _common import entry, finish, parser

from rmthess.cases import get_case
from rmthess.report.checks import check_abs, check_lower


def _blocks(H: torch.Tensor, K: int, p: int) -> torch.Tensor:
    return H.reshape(K, p, K, p).permute(0, 2, 1, 3)  # (K, K, p, p)


def _layer_checks(H, K: int, p: int, U: torch.Tensor, loss: str, tag: str, label: str) -> list:
    """Checks on one layer's autograd Hessian ``H`` (K blocks of size p, vectors ``U`` p x N).

    MSE: the off-diagonal blocks vanish to round-off and every diagonal block equals
    ``U U^T / N``. CE (contrast): the off-diagonal blocks carry a visible share of ``H``.
    """
    B = _blocks(H, K, p)
    off = B.clone()
    off[range(K), range(K)] = 0
    frac = float(off.abs().max() / H.abs().max())
    if loss != "mse":
        return [
            check_lower(
                "contrast",
                f"{tag}: max|off|/max|H| (CE: not diag)",
                frac,
                1e-3,
                "CE off-diagonal blocks are non-zero",
            )
        ]
    diag_err = float((B[range(K), range(K)] - U @ U.T / U.shape[1]).abs().max())
    return [
        check_abs(
            "block-diag",
            f"{tag}: max|off|/max|H|",
            frac,
            0.0,
            1e-12,
            "autograd Hessian; exactly block diagonal",
        ),
        check_abs(
            "block-diag", f"{tag}: diag block - {label}", diag_err, 0.0, 1e-12, "float64 round-off"
        ),
    ]


def main(argv=None) -> int:
    args = parser(__doc__).parse_args(argv)
    t0 = time.perf_counter()
    from rmthess.simulate.device import resolve_device
    from rmthess.simulate.frobenius import block_frobenius
    from rmthess.simulate.hessian import autograd_hessian
    from rmthess.simulate.sampling import sample_instance

    dev = resolve_device(args.device)
    sizes = (
        [(3, 5, 11, 4), (4, 6, 9, 3)]
        if args.quick
        else [(3, 5, 11, 4), (4, 6, 9, 3), (6, 8, 20, 5), (10, 7, 30, 6)]
    )
    checks = []
    for i, (C, d, N, m) in enumerate(sizes):
        seed = args.seed + i
        # linear model: parameters are the rows of W (C blocks of size d)
        lin = sample_instance("linear", C, d, N, seed=seed, device=dev)
        for loss in ("mse", "ce"):
            H = autograd_hessian("linear", loss, lin, seed=seed)
            tag = f"linear-{loss} C={C} d={d} N={N}"
            checks += _layer_checks(H, C, d, lin.X[0], loss, tag, "XX^T/N")
        # one-hidden-layer net: V is the last C*m parameters (C blocks of size m)
        hid = sample_instance("hidden", C, d, N, m, seed=seed, device=dev)
        h = torch.relu(hid.W[0] @ hid.X[0])
        for loss in ("mse", "ce"):
            H = autograd_hessian("hidden", loss, hid, seed=seed)[m * d :, m * d :]
            tag = f"output-{loss} C={C} m={m} N={N}"
            checks += _layer_checks(H, C, m, h, loss, tag, "hh^T/N")
    # the Gram-route simulation at a moderate size
    for case in ("linear-mse", "output-mse"):
        res = block_frobenius(
            case,
            16,
            64,
            128,
            m=8 if get_case(case).needs_m else None,
            trials=2,
            seed=args.seed,
            device=dev,
        )
        checks.append(
            check_abs(
                "block-diag",
                f"{case} simulated F_off / F_diag (C=16)",
                float(abs(res.F_off_trials).max() / res.F_diag_trials.min()),
                0.0,
                1e-12,
                "Gram route, d=64, N=128",
            )
        )
    return finish(checks, t0)


if __name__ == "__main__":
    sys.exit(entry(main))
