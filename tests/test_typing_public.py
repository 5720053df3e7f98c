"""Type hints on every public signature of the ground floor and rmthess.theory (issue 16,
section 2). mypy (``.ci/run``) checks that the hints are right; this test, that they are
there, also where mypy is not installed."""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import pytest

MODULES = [
    "rmthess._checks",
    "rmthess._random",
    "rmthess._stats",
    "rmthess.cases",
    "rmthess.curvature",
    "rmthess.data",
    "rmthess.inits",
    "rmthess.landscape",
    "rmthess.report",
    "rmthess.simulate",
    "rmthess.sweep",
    "rmthess.theory",
]


def _public(modname: str):
    mod = importlib.import_module(modname)
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n, o in vars(mod).items() if not n.startswith("_") and callable(o)]
        names = [n for n in names if getattr(vars(mod)[n], "__module__", None) == modname]
    for name in names:
        obj = getattr(mod, name)
        if inspect.isfunction(obj):
            yield f"{modname}.{name}", obj
        elif inspect.isclass(obj) and obj.__module__.startswith("rmthess"):
            for attr, fn in vars(obj).items():
                if not inspect.isfunction(fn) or (attr.startswith("_") and attr != "__init__"):
                    continue
                if attr == "__init__" and dataclasses.is_dataclass(obj):
                    continue  # generated from the annotated fields
                yield f"{modname}.{name}.{attr}", fn


def _missing(fn) -> list[str]:
    sig = inspect.signature(fn)
    out = [
        p.name
        for p in sig.parameters.values()
        if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty
    ]
    if sig.return_annotation is inspect.Signature.empty and fn.__name__ != "__init__":
        out.append("return")
    return out


@pytest.mark.parametrize("modname", MODULES)
def test_public_signatures_are_annotated(modname):
    bad = {name: _missing(fn) for name, fn in _public(modname) if _missing(fn)}
    assert not bad, f"public signatures without type hints: {bad}"
