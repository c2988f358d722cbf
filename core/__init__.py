"""loan-stream: core."""
