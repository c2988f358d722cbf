"""loan-stream: sparky."""
