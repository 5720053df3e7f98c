"""Benchmarks (``rmthess bench solver``, ``rmthess bench simulate``)."""
