"""loan-stream: kafka_consumer (loans-consume: format, read, cli)."""
