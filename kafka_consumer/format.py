"""Readable lines for records: a layout per stream (`core.streams`); `{field:kind,align}` renders a
missing field as "-". Pure functions, no Kafka: `loans-consume`, the demo and tests share them.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from core.streams import STREAMS

MISSING = "-"


def _parse_time(x: Any) -> datetime:
    """ISO string (`...Z`, `...+00:00`; naive means UTC) or epoch seconds/milliseconds, in UTC."""
    if isinstance(x, int | float) and not isinstance(x, bool):
        return datetime.fromtimestamp(x / 1000 if abs(x) > 1e11 else x, UTC)
    dt = datetime.fromisoformat(x.strip())
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _number(spec: str, scale: float = 1.0, prefix: str = "", suffix: str = "") -> Callable[[Any], str]:
    return lambda x: f"{prefix}{float(x) * scale:{spec}}{suffix}"


def _money_short(x: Any) -> str:
    amount = float(x)
    for size, unit, decimals in ((1e9, "B", 1), (1e6, "M", 1), (1e4, "K", 0)):
        if abs(amount) >= size:
            return f"${amount / size:,.{decimals}f}{unit}"
    return f"${amount:,.0f}"


def _joined(sep: str) -> Callable[[Any], str]:
    """A list (or a struct's values) joined by `sep`; an empty one is "-", a string stays as it is."""

    def render(x: Any) -> str:
        if isinstance(x, str):
            return x
        return sep.join(map(str, x.values() if isinstance(x, dict) else x)) or MISSING

    return render


def _short_id(x: Any) -> str:
    return str(x) if len(str(x)) <= 14 else f"{str(x)[:8]}…{str(x)[-4:]}"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…(truncated)"


def _compact(x: Any, limit: int = 40) -> str:
    text = x if isinstance(x, str) else json.dumps(x, separators=(",", ":"), ensure_ascii=False, default=str)
    return _truncate(text, limit)


OPTIONAL = ("alert", "error", "codes", "shadow", "estimate")  # kinds that show nothing (not "-") when missing


def _largest_psi(x: Any, shown: int = 3) -> str:
    """The fields that drifted most: `(fico_range_low 2.38 dti 0.02 ...)`."""
    if not isinstance(x, list) or not x:
        return ""
    top = sorted(x, key=lambda f: -float(f.get("psi") or 0))[:shown]
    return (
        "(" + " ".join(f"{f['feature']} {f['psi']:.2f}" for f in top) + (" ...)" if len(x) > shown else ")")
    )


KINDS: dict[str, Callable[[Any], str]] = {
    "time": lambda x: _parse_time(x).strftime("%H:%M:%S"),
    "hm": lambda x: _parse_time(x).strftime("%H:%M"),
    "id": _short_id,
    "int": _number(",.0f"),
    "f2": _number(".2f"),
    "f3": _number(".3f"),
    "pct": _number(".1f", 100, suffix="%"),  # rates are fractions: 0.612 -> 61.2%
    "pct0": _number(".0f", 100, suffix="%"),
    "money": _number(",.0f", prefix="$"),
    "money_short": _money_short,
    "ms": _number(",.0f", suffix=" ms"),
    "minutes": _number(".1f", 1 / 60, suffix=" min"),
    "list": _joined(","),
    "codes": lambda x: " ".join(r["code"] for r in x) if isinstance(x, list) else "",
    "shadow": lambda x: "[shadow] " if x is True else "",
    "path": _joined("/"),
    "alert": lambda x: "[ALERT]" if x is True else "",
    "drift": lambda x: "[DRIFT]" if x is True else "no drift",
    "estimate": lambda x: " [ESTIMATE]" if x is True else "",
    "psi": _largest_psi,
    "error": lambda x: f"error: {_compact(x, 120)}",
    "version": lambda x: f"v{x}",
    "payload": lambda x: _compact(x, 60),
}

LAYOUTS = {s.name: s.layout for s in STREAMS}  # streams without a layout print key=value


class _Line(string.Formatter):
    """`str.format` over a record: a missing key is None, `kind,align` specs, a bad value shown as is."""

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        return kwargs.get(key) if isinstance(key, str) else None

    def format_field(self, value: Any, format_spec: str) -> str:
        kind, _, align = format_spec.partition(",")
        if kind not in KINDS:
            kind, align = "", format_spec
        try:
            if value is None or value == "":
                text = "" if kind in OPTIONAL else MISSING
            else:
                text = KINDS.get(kind, _compact)(value)
        except (TypeError, ValueError, OverflowError, OSError, AttributeError):
            text = _compact(value)
        return format(text, align)


_LINE = _Line()
# control characters (C0, DEL, C1) as escapes: records carry senders' strings, a terminal obeys them
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def printable(text: str) -> str:
    """`text` with every control character shown as `\\xNN` (a tab or newline too: one line each)."""
    return text.translate(_CONTROLS)


_SHOWN = {stream: {f for _, f, _, _ in _LINE.parse(layout) if f} for stream, layout in LAYOUTS.items()}


def format_record(stream: str, value: dict[str, Any]) -> str:
    """One readable line for one record of `stream` from its layout in `LAYOUTS`.

    Fields the layout does not name are left out (--json shows them). Streams without a layout, and
    records none of whose fields the layout names, are shown as `key=value ...` (null values left out).
    Never raises: a value that is not a JSON object is shown raw after `[not an object]`.
    """
    if not isinstance(value, dict):
        return printable(f"[not an object] {_compact(value, 200)}")
    if isinstance(window := value.get("window"), dict):  # Spark's `window` struct, not yet flattened
        value = {"window_start": window.get("start"), "window_end": window.get("end"), **value}
        del value["window"]
    layout = LAYOUTS.get(stream)
    if layout is None or (value and not _SHOWN[stream] & value.keys()):
        line = " ".join(f"{k}={_compact(x)}" for k, x in value.items() if x is not None)
    else:
        line = _LINE.vformat(layout, (), value)
    return printable(" ".join(line.split()) if "\n" in line or "\r" in line else line.rstrip())


def format_message(stream: str, raw: bytes | None) -> str:
    """`format_record` of a message value; a value that is not JSON is shown raw after `[not JSON]`."""
    try:
        return format_record(stream, json.loads(raw if raw is not None else b""))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        text = raw.decode("utf-8", "replace") if raw is not None else "<no value>"
        return printable(f"[not JSON] {_truncate(' '.join(text.split()), 200)}")


def json_line(raw: bytes | None) -> str | None:
    """The value as compact one-line JSON, or None when it is not JSON."""
    try:
        return printable(json.dumps(json.loads(raw or b""), separators=(",", ":"), ensure_ascii=False))
    except (ValueError, RecursionError):
        return None
