"""Benchmarks: scripts that print a table and write JSON under benchmarks/results/.

Run them from the repository root as modules, e.g. ``python -m benchmarks.speed``.
"""
