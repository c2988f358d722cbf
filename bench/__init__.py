"""Benchmarks: each prints its figures; results go in the README with the machine they ran on."""
