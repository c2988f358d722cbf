"""One training run: data and the temporal split, the PyTorch ensemble and the baselines, their
search and fit, the report, and the run itself (train)."""
