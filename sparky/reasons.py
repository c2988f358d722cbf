"""Why a message is a dead letter, in one line, from the pydantic contract itself.

Spark decides which rows fail (the cheap `ok` test in `sparky.source`); only those rows come here,
in a Python worker, so the JVM never plans the per-field "what is wrong" expressions (hundreds of
them, about a second of planning per micro-batch on a 2-core machine). The contract is validated in
pydantic's strict JSON mode, which accepts what Spark's `from_json` accepts (numbers for numbers,
ISO strings for dates), and fields the contract does not know are ignored, as Spark ignores them.

    explain(LoanApplication, b'{"loan_amnt": "lots", ...}', size=1_024, max_bytes=100_000)
    -> 'field loan_amnt: expected double, got ["lots"]; missing required field fico_range_low'

`dead_letter` makes the text fields of a dead letter from the raw bytes, whatever they are: bytes
that are not UTF-8 are shown escaped (`\xff`) and also kept as base64.
"""

from __future__ import annotations

import base64
import codecs
import json
from typing import Any, get_type_hints

from pydantic import BaseModel, ValidationError

from sparky.schema import enum_values, spark_type

KEY_MAX_BYTES = 256  # a longer message key makes a dead letter (an application's key is its id)
BOUNDS = ("ge", "gt", "le", "lt")
NOT_AN_OBJECT = ("json_invalid", "model_type", "model_attributes_type")
IGNORED = ("extra_forbidden",)  # Spark's from_json ignores unknown fields; so does validation


def _shown(value: Any) -> str:
    """A value as the reason shows it: numbers and strings as they are, no quotes."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _describe(model: type[BaseModel], error: Any) -> str | None:
    """One pydantic error as a reason part; None for errors Spark does not make (unknown fields)."""
    kind, loc, given = error["type"], error["loc"], error.get("input")
    if kind in IGNORED:
        return None
    name = str(loc[0]) if loc else ""
    if name not in model.model_fields:
        return f"{'.'.join(map(str, loc)) or 'record'}: {error['msg']}"
    if kind == "missing" or (given is None and model.model_fields[name].is_required()):
        return f"missing required field {name}"  # null counts as missing, as it does for Spark
    if kind.endswith(("_type", "_parsing")) and kind != "enum":
        expected = spark_type(get_type_hints(model)[name]).simpleString()
        return f"field {name}: expected {expected}, got {json.dumps([given], default=str)}"
    ctx = error.get("ctx") or {}
    if (bound := next((b for b in BOUNDS if b in ctx), None)) is not None:
        return f"field {name}={_shown(given)} is out of range ({bound} {_shown(ctx[bound])})"
    if kind == "string_pattern_mismatch":
        return f"field {name}={given} does not match {ctx.get('pattern')}"
    if kind == "enum" and (allowed := enum_values(get_type_hints(model)[name])) is not None:
        return f"field {name}: {given} is not one of {', '.join(allowed)}"
    return f"field {name}: {error['msg']}"


def explain(
    model: type[BaseModel],
    payload: bytes | str | None,
    size: int,
    max_bytes: int,
    context: dict[str, Any] | None = None,
) -> str:
    """The reason `payload` (`size` bytes as received) is not a valid `model` event: size, then JSON,
    then each field (`context`: the contract's validation context, e.g. its time bounds). An
    oversized payload is judged by its size alone (it may arrive cut)."""
    raw = payload.encode() if isinstance(payload, str) else (payload or b"")
    if size <= 0:
        return "empty value"
    if size > max_bytes:
        return f"payload of {size} bytes exceeds LOANS_SPARK_MAX_MESSAGE_BYTES={max_bytes}"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}"
    try:
        model.model_validate_json(raw, strict=True, context=context)
    except ValidationError as exc:
        errors = exc.errors()
        if any(e["type"] in NOT_AN_OBJECT for e in errors):
            return "not a JSON object"
        parts = [part for e in errors if (part := _describe(model, e)) is not None]
        if parts:
            return "; ".join(parts)
    return "malformed record (a value Spark's JSON reader does not accept for its type)"


def key_problem(key: bytes | None, size: int | None) -> str | None:
    """Why a message key (`size` bytes as received; `key` maybe cut) makes a dead letter, or None."""
    if key is None or size is None:
        return None
    if size > KEY_MAX_BYTES:
        return f"key of {size} bytes exceeds {KEY_MAX_BYTES}"
    try:
        text = bytes(key).decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"key is not valid UTF-8: byte 0x{key[exc.start]:02x} at offset {exc.start}"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return "key has control characters"
    return None


def dead_letter(
    model: type[BaseModel],
    key: bytes | None,
    raw: bytes | None,
    size: int,
    max_bytes: int,
    keep: int,
    context: dict[str, Any] | None = None,
    key_bytes: int | None = None,
) -> tuple[str | None, str, str, str | None]:
    """`(key, reason, payload, payload_base64)` of a dead letter from the message's raw key and value
    (`raw` may arrive cut; `size` is the size received; `key_bytes` the key's). The payload is cut at
    `keep` bytes, as text with bytes that are not UTF-8 escaped (`\\xff`); `payload_base64` holds the
    same bytes when they are not valid UTF-8 (a multi-byte character cut at the end does not count).
    The key is shown escaped the same way, cut at KEY_MAX_BYTES; a hostile key is the reason first."""
    value = bytes(raw or b"")
    reason = key_problem(key, key_bytes) or explain(model, value, size, max_bytes, context)
    kept = value[:keep]
    cut = len(kept) < size  # only a cut payload may end inside a character
    try:
        text, binary = codecs.getincrementaldecoder("utf-8")().decode(kept, final=not cut), False
    except UnicodeDecodeError:
        text, binary = kept.decode("utf-8", "backslashreplace"), True
    shown_key = bytes(key)[:KEY_MAX_BYTES].decode("utf-8", "backslashreplace") if key is not None else None
    return shown_key, reason, text, base64.b64encode(kept).decode("ascii") if binary else None
