"""Benchmarks of icpflow and their baseline: ``python -m bench [scenario] [--size tiny|full]`` (see README.md)."""
