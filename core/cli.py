"""The one error-handling point of every CLI: a project error is one line on stderr and exit 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from core.errors import LoanAnalyticsError


def run_main(body: Callable[[], int]) -> int:
    """Run a CLI body; `LoanAnalyticsError` -> one line on stderr, exit 2; Ctrl-C -> exit 130."""
    try:
        return body()
    except LoanAnalyticsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
