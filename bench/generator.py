"""Generation speed on one core: the vectorised generator against a naive per-row Faker generator.

Both make complete live applications (identity, channel, funnel, Lending Club credit fields) and,
in the "+ JSON" rows, the message bytes that go to Kafka. Pinned to one CPU.
    uv run python -m bench.generator --rows 200000 --naive-rows 3000
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
from faker import Faker

from core.events import LoanApplication
from generator.applications import ApplicationGenerator
from kafka_producer.encode import json_lines

GRADES = "ABCDEFG"


def naive_application(fake: Faker, rng: np.random.Generator, now: datetime) -> LoanApplication:
    """The obvious way: one Faker call per field, one pydantic object per row."""
    g = int(rng.integers(0, 7))
    sub = int(rng.integers(1, 6))
    rate = 0.06 + 0.03 * g + 0.004 * sub
    term = 36 if rng.random() < 0.75 else 60
    amount = float(round(rng.lognormal(9.1, 0.6) / 25) * 25)
    amount = min(max(amount, 500.0), 35_000.0)
    monthly = rate / 12
    fico = int(760 - 25 * g - 3 * sub) // 5 * 5
    state = fake.state_abbr(include_territories=False)
    return LoanApplication(
        application_id=str(uuid.uuid4()),
        event_time=now,
        customer_id=f"cus-{fake.random_number(8, True)}",
        ssn_hash=hashlib.sha256(fake.ssn().encode()).hexdigest(),
        email=fake.email(),
        phone=fake.phone_number(),
        device_id=fake.md5()[:16],
        ip_address=fake.ipv4_public(),
        user_agent=fake.user_agent(),
        channel=fake.random_element(["web", "mobile_app", "branch", "phone", "partner"]),
        session_seconds=float(rng.lognormal(6, 0.5)),
        form_fill_seconds=float(rng.lognormal(5.5, 0.5)),
        attempts=1,
        status=fake.random_element(["started", "submitted", "approved", "declined", "funded"]),
        processing_ms=int(rng.lognormal(7, 0.4)),
        loan_amnt=amount,
        term=term,
        int_rate=round(rate, 4),
        installment=round(amount * monthly / (1 - (1 + monthly) ** -term), 2),
        grade=GRADES[g],
        sub_grade=f"{GRADES[g]}{sub}",
        emp_title=fake.job().lower(),
        emp_length="3 years",
        home_ownership="RENT",
        annual_inc=float(round(rng.lognormal(11, 0.5))),
        verification_status="Verified",
        purpose="debt_consolidation",
        title="Debt consolidation",
        dti=float(rng.uniform(0, 30)),
        earliest_cr_line=(now - timedelta(days=int(rng.integers(1000, 9000)))).date(),
        fico_range_low=fico,
        fico_range_high=fico + 4,
        open_acc=int(rng.integers(2, 20)),
        pub_rec=0,
        revol_bal=float(rng.lognormal(9, 1)),
        revol_util=float(rng.uniform(0, 1)),
        total_acc=20,
        delinq_2yrs=0,
        inq_last_6mths=int(rng.integers(0, 4)),
        addr_state=state,
        zip_code=f"{fake.zipcode_in_state(state)[:3]}xx",
    )


def _rate(rows: int, seconds: float) -> float:
    return rows / seconds if seconds > 0 else math.inf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--naive-rows", type=int, default=3_000)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    now = datetime.now(UTC)

    fake, rng = Faker("en_US"), np.random.default_rng(1)
    fake.seed_instance(1)
    start = time.perf_counter()
    naive = [naive_application(fake, rng, now) for _ in range(args.naive_rows)]
    naive_gen = time.perf_counter() - start
    payloads = [a.model_dump_json().encode() for a in naive]
    naive_total = time.perf_counter() - start
    assert len(payloads) == args.naive_rows

    setup_start = time.perf_counter()
    gen = ApplicationGenerator(seed=1)
    setup = time.perf_counter() - setup_start
    gen.batch(args.batch, now, 0.001)  # warm-up
    build = encode = 0.0
    for _ in range(args.rows // args.batch):
        t0 = time.perf_counter()
        batch = gen.batch(args.batch, now, 0.001)
        t1 = time.perf_counter()
        lines = json_lines(batch.applications)
        encode += time.perf_counter() - t1
        build += t1 - t0
        assert len(lines) == args.batch
    rows = args.rows // args.batch * args.batch

    naive_rate, naive_total_rate = _rate(args.naive_rows, naive_gen), _rate(args.naive_rows, naive_total)
    fast_rate, fast_total_rate = _rate(rows, build), _rate(rows, build + encode)
    print(
        f"one core; {rows:,} vectorised rows in batches of {args.batch:,} (one-off set-up {setup:.2f} s); "
        f"{args.naive_rows:,} naive rows"
    )
    print(f"{'':<34}{'rows/s':>12}{'vs naive':>10}")
    print(f"{'naive per-row Faker + pydantic':<34}{naive_rate:>12,.0f}{1:>9.0f}x")
    print(f"{'vectorised generator':<34}{fast_rate:>12,.0f}{fast_rate / naive_rate:>9.0f}x")
    print(f"{'naive + JSON':<34}{naive_total_rate:>12,.0f}{1:>9.0f}x")
    print(f"{'vectorised + JSON':<34}{fast_total_rate:>12,.0f}{fast_total_rate / naive_total_rate:>9.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
