"""loan-stream: models."""
