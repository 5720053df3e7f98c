"""``rmthess theory``: exact limiting Frobenius norms of the Hessian blocks (no torch).

Example::

    rmthess theory --case linear-ce --C 10,100,1000 --gamma 0.5
    rmthess theory --case hidden-ce --C 10,100 --gamma 0.5 --m 8 --samples 400 --json
"""

from __future__ import annotations

import math


def add_arguments(parser) -> None:
    from rmthess import CASES

    parser.add_argument("--case", required=True, help=f"one of: {', '.join(CASES)}")
    parser.add_argument(
        "--C", required=True, help="comma-separated class counts >= 2, e.g. 10,100,1e3"
    )
    parser.add_argument("--gamma", required=True, help="d/N, a finite number > 0")
    parser.add_argument(
        "--m", default=None, help="hidden width (required for hidden-* and output-*)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list of records")
    parser.add_argument("--seed", default="0", help="seed of the Monte-Carlo cases (int >= 0)")
    parser.add_argument(
        "--samples",
        default=None,
        help="Monte-Carlo cases: independent V draws (default: 200-10000 by cost)",
    )
    parser.add_argument(
        "--inner", default=None, help="Monte-Carlo cases: g draws per V draw (default 64)"
    )
    parser.add_argument(
        "--asymptotic",
        action="store_true",
        help="also print the large-C constants A_diag, p_diag, A_off, p_off",
    )


def _parse_float(name, text):
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number > 0, got {text!r}") from None


def _parse_int(name, text):
    if text is None:
        return None
    try:
        return float(text) if "." in str(text) or "e" in str(text).lower() else int(text)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {text!r}") from None


_KEYS = ("case", "C", "gamma", "m", "F_diag", "F_off", "ratio", "stderr", "method")


def run(args) -> int:
    import json

    from rmthess._checks import check_case, parse_int_list
    from rmthess.theory.asymptotics import asymptotic_constants
    from rmthess.theory.frobenius import frobenius_limits

    case = check_case(args.case)
    Cs = parse_int_list("C", args.C, minimum=2)
    gamma = _parse_float("gamma", args.gamma)
    m = _parse_int("m", args.m)
    seed = _parse_int("seed", args.seed)
    samples = _parse_int("samples", args.samples)
    inner = _parse_int("inner", args.inner)
    rows = [
        frobenius_limits(case, C, gamma, m, samples=samples, inner=inner, seed=seed) for C in Cs
    ]
    asym = asymptotic_constants(case, gamma, m) if args.asymptotic else None
    if args.json:
        records = []
        for r in rows:
            rec = r.as_record()
            if asym is not None:
                rec.update(A_diag=asym.A_diag, p_diag=asym.p_diag)
                rec.update(A_off=asym.A_off, p_off=asym.p_off)
            records.append({k: _json_safe(v) for k, v in rec.items()})
        print(json.dumps(records, indent=2))
        return 0
    head = f"rmthess theory: case={case} gamma={gamma:g}" + ("" if m is None else f" m={m}")
    print(head)
    cols = ["C", "F_diag", "F_off", "ratio", "stderr", "method"]
    mc = any(r.method == "monte-carlo" for r in rows)
    if mc:
        cols[4:4] = ["F_diag_se", "F_off_se"]
        cols[-1:-1] = ["n_samples"]
    table = [cols]
    for r in rows:
        rec = r.as_record()
        table.append([_fmt(rec[c]) for c in cols])
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for row in table:
        print("  ".join(s.rjust(w) for s, w in zip(row, widths, strict=True)))
    if mc:
        r0 = rows[0]
        print(
            f"(Monte Carlo: n_samples V draws x {r0.n_inner} g draws each, seed {r0.seed}; "
            "stderr = standard error of ratio)"
        )
    if asym is not None:
        print(
            f"large C: F_diag ~ {asym.A_diag:.10g} * C^-{asym.p_diag:g}, "
            f"F_off ~ {asym.A_off:.10g} * C^-{asym.p_off:g}"
        )
    return 0


def _fmt(v):
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    return f"{v:.10g}"


def _json_safe(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v
