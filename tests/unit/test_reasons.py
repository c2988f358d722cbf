"""Dead-letter reasons from the contract: one readable line naming every problem of a message."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from core.events import HistoricalLoan, LoanApplication
from generator.applications import ApplicationGenerator
from generator.encode import json_lines
from generator.history import synthetic_history
from sparky.reasons import explain

MAX = 100_000


@pytest.fixture(scope="module")
def good() -> dict:
    line = json_lines(ApplicationGenerator(seed=3).batch(1, datetime(2026, 3, 1, tzinfo=UTC)).applications)[0]
    return json.loads(line)


def why(record: dict | bytes, model: type = LoanApplication) -> str:
    raw = record if isinstance(record, bytes) else json.dumps(record).encode()
    return explain(model, raw, len(raw), MAX)


def test_size_and_json_come_first() -> None:
    assert explain(LoanApplication, b"", 0, MAX) == "empty value"
    assert explain(LoanApplication, b"{}", 200_000, MAX) == (
        "payload of 200000 bytes exceeds LOANS_SPARK_MAX_MESSAGE_BYTES=100000"
    )
    assert why(b"{not json") == "not a JSON object"
    assert why(b"[1, 2]") == "not a JSON object"


def test_each_kind_of_field_problem_is_named(good: dict) -> None:
    assert why({**good, "loan_amnt": "lots"}) == 'field loan_amnt: expected double, got ["lots"]'
    assert why({**good, "term": "36"}) == 'field term: expected bigint, got ["36"]'
    missing = {k: v for k, v in good.items() if k != "fico_range_low"}
    assert why(missing) == "missing required field fico_range_low"
    assert why({**good, "fico_range_low": 200}) == "field fico_range_low=200 is out of range (ge 300)"
    assert why({**good, "grade": "Z"}) == "field grade=Z does not match ^[A-G]$"
    assert why({**good, "channel": "tv"}) == (
        "field channel: tv is not one of web, mobile_app, branch, phone, partner"
    )
    two = why({**good, "dti": -1, "status": None})
    assert two == "field dti=-1 is out of range (ge 0); missing required field status"  # null = missing


def test_a_valid_event_with_unknown_fields_is_not_explained_by_them(good: dict) -> None:
    """Spark ignores fields the contract does not know; so do the reasons."""
    assert why({**good, "extra": 1}).startswith("malformed record")
    history = json.loads(json_lines(synthetic_history(seed=1, n=1))[0])
    assert why({**history, "issue_d": "soon"}, HistoricalLoan) == (
        'field issue_d: expected date, got ["soon"]'
    )
