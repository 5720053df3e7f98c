"""One conformance test over every public result class (one record vocabulary).

Every dataclass that rmthess exports with a ``to_dict`` method is a *record*: ``to_dict()``
holds JSON-safe scalars only (``json.dumps(..., allow_nan=False)`` works: non-finite
values become None), and, where the class has arrays, ``to_frame()`` is a tidy
``pandas.DataFrame`` (string column names, one scalar per cell). :data:`FACTORIES` makes
a small instance of each; a new public result class fails :func:`test_every_result_class_
has_a_factory` until it is added there (or to :data:`NOT_RECORDS` with the reason).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import numbers

import numpy as np
import pytest

from tests.test_conformance_inputs import PACKAGES


def _torch_problem():
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    X = torch.randn(12, 4, dtype=torch.float64)
    y = torch.arange(12) % 3
    return model, nn.CrossEntropyLoss(), (X, y)


def _relu_problem():
    from rmthess.data import gaussian
    from rmthess.landscape import relu_mlp

    return relu_mlp(4, 3, 5, 2, seed=0), gaussian(3, 4, 12, seed=0)


_A = np.diag([3.0, 2.0, 1.0, 0.5, 0.25, 0.1])


def _block_map():
    from rmthess.curvature import block_norms

    model, loss, data = _torch_problem()
    return block_norms(model, loss, data, exact=True, progress=False)


def _summary():
    from rmthess.curvature import curvature_summary

    model, loss, data = _torch_problem()
    return curvature_summary(model, loss, data, k=2, probes=4, seed=0)


def _bound_audit():
    from rmthess.landscape import hessian_bound_audit

    model, data = _relu_problem()
    return hessian_bound_audit(model, data, samples=4, seed=0)


def _per_sample():
    from rmthess.landscape import per_sample_curvature

    model, data = _relu_problem()
    return per_sample_curvature(model, data, seed=0, progress=False)


def _neighbourhood():
    from rmthess.landscape import neighbourhood_delta

    model, loss, data = _torch_problem()
    return neighbourhood_delta(model, loss, data, k=3, sigma=0.1, seed=0, probes=4)


_LOSSES = np.random.default_rng(0).exponential(size=64)


def _delta_curve():
    from rmthess.landscape import delta_curve

    return delta_curve(_LOSSES, n_orders=8, seed=0)


_SPEC = {"task": "theory", "grid": {"case": ["linear-ce"], "C": [2, 3], "gamma": [0.5]}}


def _store(tmp_path):
    from rmthess.sweep import load_spec, run_sweep

    spec = load_spec(_SPEC)
    return run_sweep(spec, str(tmp_path / "store"), engine="serial", progress=False)


#: a small instance of every public record class, by qualified name
FACTORIES = {
    "rmthess.cases.Case": lambda tmp: __import__("rmthess.cases").cases.get_case("hidden-ce"),
    "rmthess.curvature.blocks.BlockMap": lambda tmp: _block_map(),
    "rmthess.curvature.density.Outliers": lambda tmp: __import__(
        "rmthess.curvature"
    ).curvature.outliers(_A, k=3),
    "rmthess.curvature.density.SpectralDensity": lambda tmp: __import__(
        "rmthess.curvature"
    ).curvature.spectral_density(_A, probes=2, steps=4, seed=0),
    "rmthess.curvature.eigen.Condition": lambda tmp: __import__(
        "rmthess.curvature"
    ).curvature.condition_number(_A),
    "rmthess.curvature.eigen.TopEigen": lambda tmp: __import__(
        "rmthess.curvature"
    ).curvature.top_eigenvalues(_A, k=2),
    "rmthess.curvature.summary.CurvatureSummary": lambda tmp: _summary(),
    "rmthess.curvature.on_data.TheoryOnData": lambda tmp: __import__(
        "rmthess.curvature"
    ).curvature.theory_on_data(
        __import__("rmthess.data").data.gaussian(3, 4, 12, seed=0), networks=2, draws=16
    ),
    "rmthess.theory.depth.DepthLimits": lambda tmp: __import__(
        "rmthess.theory"
    ).theory.depth_frobenius("ce", 3, 0.5, (4, 3), samples=20, inner=8),
    "rmthess.simulate.deep.DepthBlockNorms": lambda tmp: __import__(
        "rmthess.simulate"
    ).simulate.depth_block_frobenius("ce", 3, 8, 16, (4, 3), trials=2, device="cpu"),
    "rmthess.curvature.trace.TraceEstimate": lambda tmp: __import__(
        "rmthess.curvature"
    ).curvature.hessian_trace(_A, seed=0),
    "rmthess.data.dataset.Dataset": lambda tmp: __import__("rmthess.data").data.gaussian(
        3, 4, 12, seed=0
    ),
    "rmthess.landscape.bounds.BoundAudit": lambda tmp: _bound_audit(),
    "rmthess.landscape.delta.DeltaCurve": lambda tmp: _delta_curve(),
    "rmthess.landscape.delta.DeltaExpected": lambda tmp: __import__(
        "rmthess.landscape"
    ).landscape.delta_expected(_LOSSES),
    "rmthess.landscape.delta.RateFit": lambda tmp: __import__(
        "rmthess.landscape"
    ).landscape.fit_rate(_delta_curve(), n_boot=50, seed=0),
    "rmthess.landscape.neighbourhood.NeighbourhoodDelta": lambda tmp: _neighbourhood(),
    "rmthess.landscape.per_sample.PerSampleNorms": lambda tmp: _per_sample(),
    "rmthess.report.checks.Check": lambda tmp: __import__(
        "rmthess.report.checks"
    ).report.checks.Check("s", "n", float("nan"), 1.0, 0.1, False),
    "rmthess.report.config.ReportConfig": lambda tmp: __import__(
        "rmthess.report"
    ).report.get_config("quick"),
    "rmthess.simulate.frobenius.BlockFrobenius": lambda tmp: __import__(
        "rmthess.simulate"
    ).simulate.block_frobenius("linear-ce", 3, 8, 16, trials=2, seed=0),
    "rmthess.sweep.engines.SweepResult": _store,
    "rmthess.sweep.spec.Spec": lambda tmp: __import__("rmthess.sweep").sweep.load_spec(_SPEC),
    "rmthess.theory.asymptotics.AsymptoticConstants": lambda tmp: __import__(
        "rmthess.theory"
    ).theory.asymptotic_constants("linear-ce", 0.5),
    "rmthess.theory.frobenius.FrobeniusLimits": lambda tmp: __import__(
        "rmthess.theory"
    ).theory.frobenius_limits("linear-ce", 3, 0.5),
    "rmthess.theory.inputs.InputStats": lambda tmp: __import__("rmthess.theory").theory.input_stats(
        np.random.default_rng(0).random((60, 24)), np.arange(60) % 3
    ),
    "rmthess.theory.layer_gap.BlockDiagonalGap": lambda tmp: __import__(
        "rmthess.theory"
    ).theory.block_diagonal_gap("linear-ce", 3, 0.5, n_atoms=256),
    "rmthess.theory.layer_gap.GapCurve": lambda tmp: __import__("rmthess.theory").theory.gap_vs_C(
        "linear-ce", [2, 3], 0.5, n_atoms=256
    ),
}


def _report_result(tmp_path):
    from rmthess.report.checks import Check
    from rmthess.report.runner import ReportResult

    checks = [Check("s", "a", 1.0, 1.0, 0.1, True), Check("s", "b", float("nan"), 1.0, 0.1, False)]
    return ReportResult(out=tmp_path, checks=checks, seconds=1.5, sections_run=("s",))


FACTORIES["rmthess.report.runner.ReportResult"] = _report_result

#: exported classes that are not records, and why
NOT_RECORDS = {
    "rmthess.curvature.operators.CurvatureOperator": "a linear operator, not a result",
    "rmthess.inits.Init": "a resolved initialisation law (name, sigma), an argument",
    "rmthess.simulate.sampling.Instance": "sampled tensors of one draw, an argument",
    "rmthess.theory.law.GMPLaw": "a law object (pdf/cdf/moment/support), not a record",
    "rmthess.theory.matrix_law.MatrixGMPLaw": "a law object, not a record",
    "rmthess.theory.matrix_law.MixtureLaw": "a law object, not a record",
    "rmthess.theory.separable_law.SeparableGMPLaw": "a law object (GMPLaw interface), not a record",
}

#: records whose instances are too slow to build here (each has its own module's tests)
SLOW = {
    "rmthess.landscape.experiment.LandscapeExperiment",
    "rmthess.landscape.neighbourhood.NeighbourhoodMC",
    "rmthess.simulate.fits.DecayFit",
    "rmthess.simulate.layer.LayerSpectrum",
    "rmthess.sweep.store.StoreStatus",
}


def _exported_classes():
    out = {}
    for pkg in PACKAGES:
        mod = importlib.import_module(pkg)
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if inspect.isclass(obj) and not issubclass(obj, BaseException):
                out[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return out


def test_every_result_class_has_a_factory():
    missing = sorted(set(_exported_classes()) - set(FACTORIES) - set(NOT_RECORDS) - SLOW)
    assert not missing, f"add a factory (or a reason) for {missing}"


def test_every_record_class_has_to_dict():
    for qual, cls in _exported_classes().items():
        if qual in NOT_RECORDS:
            continue
        assert dataclasses.is_dataclass(cls), f"{qual} is not a dataclass"
        assert callable(getattr(cls, "to_dict", None)), f"{qual} has no to_dict()"


#: settings records: their to_dict may hold lists of scalars (a grid, a list of C)
SETTINGS = {"rmthess.cases.Case", "rmthess.report.config.ReportConfig", "rmthess.sweep.spec.Spec"}


def _json_plain(v) -> bool:
    if isinstance(v, (list, tuple)):
        return all(_json_plain(u) for u in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _json_plain(u) for k, u in v.items())
    return _is_scalar(v)


def _is_scalar(v) -> bool:
    return v is None or isinstance(v, (str, bool, numbers.Number))


@pytest.mark.parametrize("qual", sorted(FACTORIES))
def test_record_vocabulary(qual, tmp_path):
    obj = FACTORIES[qual](tmp_path)
    assert f"{type(obj).__module__}.{type(obj).__qualname__}" == qual
    rec = obj.to_dict()
    assert isinstance(rec, dict)
    ok = _is_scalar
    if qual in SETTINGS:  # settings: lists and grids of scalars allowed, JSON-safe all the same
        ok = _json_plain
    bad = {k: type(v).__name__ for k, v in rec.items() if not ok(v)}
    assert not bad, f"{qual}.to_dict() holds non-scalars {bad}: arrays belong in to_frame()"
    json.dumps(rec, allow_nan=False)  # non-finite values must be None
    if hasattr(obj, "to_frame"):
        import pandas as pd

        df = obj.to_frame()
        assert isinstance(df, pd.DataFrame)
        assert all(isinstance(c, str) for c in df.columns), list(df.columns)
        for c in df.columns:
            assert all(_is_scalar(v) for v in df[c].tolist()), f"{qual}.to_frame()[{c!r}]"
