"""`make client-config PRINCIPAL=<name>`: a principal's client settings for standard Kafka tools, owner
-only under `.loans/clients/`:

- `<principal>.properties`: Kafka's Java tools and clients (`kafka-console-consumer.sh
  --consumer.config`, `--command-config`, any JVM client);
- `<principal>.librdkafka.conf`: librdkafka tools (`kcat -F`). The embedded Kafka 4 broker checks
  SCRAM nonces strictly: librdkafka before 2.6.1 (Debian 12's kcat 1.7.1 has 2.0.2) is refused with
  "invalid credentials" (confluentinc/librdkafka#4895); use a newer build or the Java tools.

Consumer groups must start with the principal's group prefix (`stack.acl`), e.g.
`loans-consume-mine` for `consumer`.
"""

from __future__ import annotations

from pathlib import Path

from core.settings import KafkaSettings
from stack import secrets


def write(kafka: KafkaSettings, folder: Path) -> list[Path]:
    """The two files of `kafka`'s principal in `folder` (0600); their paths."""
    principal = kafka.username or kafka.service or "client"
    java = kafka.java_config()
    native = {"bootstrap.servers": kafka.bootstrap_servers, **kafka.security()}
    if "sasl.mechanism" in native:  # librdkafka's tools name it in the plural
        native["sasl.mechanisms"] = native.pop("sasl.mechanism")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = {
        folder / f"{principal}.properties": java,
        folder / f"{principal}.librdkafka.conf": {k: str(v) for k, v in native.items()},
    }
    for path, values in files.items():
        secrets.write(path, values)
    return list(files)
