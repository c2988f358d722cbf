"""Benchmarks: each prints its figures; results go in docs/benchmarks.md with the machine they ran on."""
