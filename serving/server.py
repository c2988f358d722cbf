"""Run an ASGI app under uvicorn on a background thread (tests, benchmarks, notebooks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from core.errors import ServiceError


@contextmanager
def running(app: FastAPI, host: str, port: int, timeout_s: float = 30.0) -> Iterator[str]:
    """Serve `app` on host:port until the block ends (the app's lifespan runs on both sides); yield its
    base URL. Raises `ServiceError` if it is not listening within `timeout_s`."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ServiceError(f"uvicorn did not start on {host}:{port} within {timeout_s:.0f} s")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
