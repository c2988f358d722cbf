"""Logging set-up shared by every CLI: one call, idempotent."""

from __future__ import annotations

import logging
import sys

_FORMAT = "%(asctime)s %(levelname)-5s %(name)s: %(message)s"


def configure(level: str = "INFO") -> None:
    """Send the project's logs to stderr at `level`; calling it again only changes the level."""
    root = logging.getLogger()
    if not any(getattr(h, "_loans", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        handler._loans = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("py4j", "urllib3", "alembic", "matplotlib", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # librdkafka logs every failed reconnect; the clients report what matters (error_cb, delivery reports)
    logging.getLogger("librdkafka").setLevel(logging.DEBUG if level == "DEBUG" else logging.CRITICAL)
