"""Benchmarks: `python3 dev.py bench` (see docs/benchmarks.md)."""
