"""Applications with edge values, for the tests that hold the streaming scorer to the Python one:
generated applications, then copies with optional fields missing, extremes at the contract's
bounds, categories no training saw, employer titles that only normalise to a key, blank required
texts, and the cross-field faults the contract lets through (`models.features.inputs.CHECKS`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np

from generator.applications import ApplicationGenerator
from kafka_producer.encode import json_lines

OPTIONAL = (
    "emp_title", "emp_length", "annual_inc", "title", "earliest_cr_line", "open_acc", "pub_rec",
    "revol_util", "total_acc", "delinq_2yrs", "inq_last_6mths",
)  # fmt: skip
EDGES: tuple[dict[str, Any], ...] = (
    {"loan_amnt": 500.0, "annual_inc": 0.0, "dti": 0.0, "revol_bal": 0.0, "revol_util": 0.0},
    {"loan_amnt": 40_000.0, "annual_inc": 9_999_999.0, "dti": 999.0, "revol_bal": 5e6, "revol_util": 5.0},
    {"int_rate": 0.0, "installment": 0.01, "fico_range_low": 300, "fico_range_high": 300},
    {"int_rate": 0.4, "fico_range_low": 850, "fico_range_high": 850, "open_acc": 500, "total_acc": 0},
    {"inq_last_6mths": 99, "delinq_2yrs": 99, "pub_rec": 99, "earliest_cr_line": "1900-01-01"},
    {"purpose": "space_travel", "home_ownership": "CASTLE", "verification_status": "Maybe"},
    {"addr_state": "ZZ", "zip_code": "000xx", "emp_length": "eleven years", "sub_grade": "G5", "grade": "G"},
    {"emp_title": "  U.S. ARMY  ", "title": ""},
    {"emp_title": "!!!", "emp_length": "10+ years"},
    {"emp_title": "Ünïcödé Straße Ltd. \t 42"},
    {"emp_title": " \t "},
    {"home_ownership": "   "},
    {"purpose": "\t"},
    {"verification_status": "\n \r"},
    {"term": 48},
    {"grade": "A", "sub_grade": "G5"},
    {"fico_range_low": 800, "fico_range_high": 700},
    {"earliest_cr_line": "2099-01-01"},
    {"term": 12, "grade": "B", "sub_grade": "C1", "earliest_cr_line": "2098-05-05"},
)


def edge_applications(n: int, seed: int, start: datetime | None = None) -> list[dict[str, Any]]:
    """`n` generated applications as JSON-ready dicts, then, for every 7th one, a copy with one
    optional field missing (in turn), and one copy per EDGES entry; ids are unique."""
    start = start or datetime.now(UTC).replace(microsecond=0)
    frame = ApplicationGenerator(seed=seed).batch(n, start, 0.001).applications
    apps = [json.loads(line) for line in json_lines(frame)]
    rng = np.random.default_rng(seed)
    extra: list[dict[str, Any]] = []
    for i, app in enumerate(apps[::7]):
        copy = dict(app)
        copy.pop(OPTIONAL[i % len(OPTIONAL)], None)
        extra.append(copy)
    for edge in EDGES:
        extra.append(apps[int(rng.integers(0, n))] | edge)
    for i, app in enumerate(extra):
        app["application_id"] = f"{app['application_id']}-edge{i}"
    return apps + extra
