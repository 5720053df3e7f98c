"""Lazy package exports: ``name -> module`` resolved on first attribute access (ground floor)."""

from __future__ import annotations

import importlib
import sys


def lazy_exports(package: str, where: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package`` exporting ``name`` from module ``where[name]``
    (a full dotted name). The first access imports the module and caches the value in the
    package, so later accesses are plain attribute look-ups."""

    def __getattr__(name: str):
        modname = where.get(name)
        if modname is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(modname), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
