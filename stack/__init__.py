"""The embedded local stack: a real Apache Kafka broker (KRaft) and an MLflow server, without Docker."""
