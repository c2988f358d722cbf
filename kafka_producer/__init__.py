"""loan-stream: kafka_producer."""
