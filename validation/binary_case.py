"""The binary case C = 2 that Collobert (2004) studied.

Claims (paper Section 4 "revisiting Collobert", docs/theory.md sections 2 and 4):

1. With CE and C = 2 the output Hessian ``diag p - p p^T = p_1 p_2 [[1, -1], [-1, 1]]``, so
   the factor ``p_1 p_2`` multiplies the diagonal AND the off-diagonal blocks alike: it
   cannot make the Hessian block diagonal. Exactly:
   - linear-ce and output-ce: ``a^{00} = p_1 p_2 = -a^{01}``, hence ``||H_00|| = ||H_01||``
     for every instance and ``F_diag = F_off`` in the limit (r(2) = 1);
   - hidden-ce: ``a^{jl} = p_1 p_2 u_j u_l 1[g_j>0] 1[g_l>0]`` with ``u = V_1 - V_2``.
2. With MSE at C = 2 (Collobert's second experiment) the hidden layer is far from block
   diagonal: ``r(2) = 0.306`` at gamma = 1/2, m = 8, against ``r(1000) = 0.019``; the
   number of classes, not the loss, drives the structure.

Checks: identities 1 to round-off on sampled instances (float64) and in the theory;
simulated r(2) of hidden-mse and hidden-ce against the theory (k = 4 SE + allowance);
r(2) / r(1000) >= 5 for hidden-mse and hidden-ce (theory).
"""

from __future__ import annotations

import math
import sys
import time

import torch
from _common import entry, finish, parser

from rmthess.cases import get_case
from rmthess.report.checks import check_abs, check_close, check_lower


def main(argv=None) -> int:
    args = parser(__doc__).parse_args(argv)
    t0 = time.perf_counter()
    from rmthess.simulate.device import resolve_device
    from rmthess.simulate.frobenius import block_frobenius
    from rmthess.simulate.sampling import sample_instance
    from rmthess.simulate.weights import block_weights, hidden_preactivations, probabilities
    from rmthess.theory import frobenius_limits

    dev = resolve_device(args.device)
    m = 8
    d, N, trials = (64, 128, 48) if args.quick else (256, 512, 256)
    gamma = d / N
    checks = []
    # 1. exact identities at C = 2
    for case in ("linear-ce", "output-ce"):
        mm = m if get_case(case).needs_m else None
        sim = block_frobenius(case, 2, d, N, m=mm, trials=4, seed=args.seed, device=dev)
        rel = float((abs(sim.F_diag_trials - sim.F_off_trials) / sim.F_diag_trials).max())
        checks.append(
            check_abs(
                "binary",
                f"{case} C=2: |F_diag-F_off|/F_diag per instance",
                rel,
                0.0,
                1e-10,
                "a^00 = -a^01 exactly; float64 round-off",
            )
        )
        th = frobenius_limits(case, 2, gamma, m=mm, seed=args.seed)
        checks.append(
            check_abs(
                "binary",
                f"{case} C=2: theory r(2)",
                th.ratio,
                1.0,
                1e-10,
                "F_diag = F_off in the limit",
            )
        )
    inst = sample_instance("hidden", 2, 16, 50, m, seed=args.seed, device=dev)
    P = probabilities(inst)  # (T, N, 2)
    mask = (hidden_preactivations(inst) > 0).to(P.dtype)  # (T, m, N)
    V = inst.V  # (T, 2, m)
    u = V[:, 0, :] - V[:, 1, :]  # (T, m)
    rows, cols = torch.meshgrid(torch.arange(m), torch.arange(m), indexing="ij")
    A = block_weights("hidden-ce", inst, rows.reshape(-1), cols.reshape(-1))  # (T, N, m*m)
    pred = (P[..., 0] * P[..., 1]).unsqueeze(-1) * (
        (u[:, None, :, None] * u[:, None, None, :])
        * (mask.transpose(1, 2)[:, :, :, None] * mask.transpose(1, 2)[:, :, None, :])
    ).reshape(A.shape)
    err = float((A - pred).abs().max() / A.abs().max())
    checks.append(
        check_abs(
            "binary",
            "hidden-ce C=2: a^jl = p1 p2 u_j u_l M_j M_l",
            err,
            0.0,
            1e-12,
            "u = V_1 - V_2; float64 round-off",
        )
    )
    # 2. no block-diagonal structure at C = 2, for MSE and CE
    for case in ("hidden-mse", "hidden-ce"):
        sim = block_frobenius(case, 2, d, N, m=m, trials=trials, seed=args.seed + 1, device=dev)
        th2 = frobenius_limits(case, 2, gamma, m=m, seed=args.seed)
        checks.append(
            check_close(
                "binary",
                f"{case} C=2: simulated r(2) vs theory",
                sim.ratio,
                th2.ratio,
                sim.ratio_se,
                th2.ratio_se,
                k=4.0,
                rel_allowance=0.10 if args.quick else 0.05,
                detail=f"d={d}, N={N}, trials={trials}",
            )
        )
        th_big = frobenius_limits(case, 1000, gamma, m=m, seed=args.seed)
        checks.append(
            check_lower(
                "binary",
                f"{case}: theory r(2) / r(1000)",
                th2.ratio / th_big.ratio,
                5.0,
                f"r(2) = {th2.ratio:.3f}, r(1000) = {th_big.ratio:.4f}; "
                f"1/sqrt(C) scaling predicts ~{math.sqrt(500):.0f}",
            )
        )
    return finish(checks, t0)


if __name__ == "__main__":
    sys.exit(entry(main))
