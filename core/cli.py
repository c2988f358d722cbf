"""The one error-handling point of every CLI (a project error is one line on stderr and exit 2), and
what CLIs share: a clean stop on Ctrl-C, asking before destroying something."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from core.errors import LoanAnalyticsError
from core.settings import private_home


def run_main(body: Callable[[], int]) -> int:
    """Run a CLI body, the local state folder made owner-only first; `LoanAnalyticsError` -> one
    line on stderr, exit 2; Ctrl-C -> exit 130."""
    try:
        private_home()
        return body()
    except LoanAnalyticsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def stop_requested() -> threading.Event:
    """An event set by the first Ctrl-C (SIGINT) or SIGTERM, so a long-running loop can stop cleanly
    between its steps (nothing is done inside the handler). A Ctrl-C more than 2 s later interrupts
    at once (a terminal's Ctrl-C often arrives twice: directly and through `make`/`uv run`)."""
    stop = threading.Event()
    first = [0.0]

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            if time.monotonic() - first[0] > 2.0:
                raise KeyboardInterrupt
            return
        first[0] = time.monotonic()
        print(f"stopping ({signal.Signals(signum).name}); Ctrl-C again to interrupt", file=sys.stderr)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    return stop


def confirmed(question: str, yes: bool) -> bool:
    """True with --yes (FORCE=1); else ask on the terminal (no terminal: no)."""
    if yes:
        return True
    if not sys.stdin.isatty():
        print(f"{question} [y/N] no terminal to ask: run again with FORCE=1 (--yes)")
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
