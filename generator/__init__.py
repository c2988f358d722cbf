"""loan-stream: generator."""
