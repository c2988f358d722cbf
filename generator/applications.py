"""Live loan applications in vectorised batches, from one seeded `numpy.random.Generator`.

`ApplicationGenerator(seed).batch(n, start, spacing_s)` returns the applications (the columns of
`core.events.LoanApplication`) and their ground truth (`ApplicationTruth`) as two DataFrames.
The same seed gives the same events; each generator's application ids carry a run id of its own
(`run_id` fixes one), so a second run never resubmits the first run's applications.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from core.events import ApplicationTruth, LoanApplication
from generator.channels import CHANNELS, SHARED_DEVICE, draw_channels, funnel, processing_ms, session_times
from generator.credit import default_probability, sample_credit
from generator.fraud import FraudRings
from generator.identity import Customers, IdentityPools, SsnKey, hex_ids, ipv4s

APPLICATION_COLUMNS = list(LoanApplication.model_fields)
TRUTH_COLUMNS = list(ApplicationTruth.model_fields)
FRAUD_CHANNELS = np.flatnonzero(np.isin(CHANNELS, ["web", "mobile_app", "partner"]))
FRAUD_DEFAULT_RATE = 0.85


@dataclass(frozen=True)
class Batch:
    applications: pd.DataFrame
    truth: pd.DataFrame

    def __len__(self) -> int:
        return len(self.applications)


class ApplicationGenerator:
    """Customers, branch terminals and fraud rings are built once; `batch` draws events from them."""

    def __init__(
        self,
        seed: int,
        fraud_share: float = 0.02,
        customers: int = 100_000,
        rings: int = 40,
        ssn_key: SsnKey | None = None,
        run_id: str | None = None,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.fraud_share = fraud_share
        self.ssn_key = ssn_key or SsnKey.configured()
        pools = IdentityPools.build(seed)
        self.customers = Customers.build(self.rng, pools, customers, self.ssn_key)
        self.rings = FraudRings.build(self.rng, pools, rings, self.ssn_key)
        self.terminals = hex_ids(self.rng, 120, "term-", digits=6).astype(object)
        self.terminal_ips = ipv4s(self.rng, 120).astype(object)
        self.run_id = run_id or secrets.token_hex(4)  # not from the seed: each run's ids are its own
        self.sequence = 0

    def batch(self, n: int, start: datetime, spacing_s: float = 0.0) -> Batch:
        """`n` applications with event times `start + i * spacing_s` (UTC)."""
        if n == 0:
            return Batch(pd.DataFrame(columns=APPLICATION_COLUMNS), pd.DataFrame(columns=TRUTH_COLUMNS))
        rng = self.rng
        times = pd.Timestamp(start).tz_convert("UTC") + pd.to_timedelta(np.arange(n) * spacing_s, unit="s")
        credit = sample_credit(rng, n, as_of=times.tz_localize(None).values.astype("datetime64[D]"))
        default_p = default_probability(credit)
        is_fraud = rng.random(n) < self.fraud_share
        channel = draw_channels(rng, n)
        channel[is_fraud] = FRAUD_CHANNELS[rng.integers(0, len(FRAUD_CHANNELS), int(is_fraud.sum()))]

        frame = self._identities(n, channel)
        frame.update(self._behaviour(n, channel, is_fraud, default_p))
        fraud = self.rings.assign(rng, times[is_fraud].asi8 // 1_000_000_000)
        ring = np.full(n, None, dtype=object)
        ring[is_fraud] = fraud.pop("ring")
        for column, values in fraud.items():  # object dtype: a fixed-width str array would truncate
            frame[column] = frame[column].astype(object)
            frame[column][is_fraud] = values

        ids = np.char.add(
            f"app-{self.run_id}-", np.char.zfill(np.arange(self.sequence, self.sequence + n).astype(str), 10)
        )
        self.sequence += n
        applications = pd.concat(
            [
                pd.DataFrame({"application_id": ids, "event_time": times}),
                credit.reset_index(drop=True),
                pd.DataFrame(frame),
            ],
            axis=1,
        )
        will_default = rng.random(n) < np.where(is_fraud, FRAUD_DEFAULT_RATE, default_p)
        truth = pd.DataFrame(
            {
                "application_id": ids,
                "event_time": times,
                "is_fraud": is_fraud,
                "fraud_ring": ring,
                "will_default": will_default,
            }
        )
        return Batch(applications[APPLICATION_COLUMNS], truth[TRUTH_COLUMNS])

    def _identities(self, n: int, channel: np.ndarray) -> dict[str, np.ndarray]:
        """Who applies and from where: a customer's own device and home IP most of the time,
        a branch or call-centre terminal on assisted channels."""
        rng, cust = self.rng, self.customers
        who = rng.integers(0, len(cust), n)
        device = cust.device_id[who]
        new_device = rng.random(n) >= 0.9  # a new phone or laptop
        device[new_device] = hex_ids(rng, int(new_device.sum()), "dev-")
        ip = cust.home_ip[who]
        away = rng.random(n) >= 0.75  # mobile network, work, travel
        ip[away] = ipv4s(rng, int(away.sum()))
        assisted = SHARED_DEVICE[channel]
        terminal = rng.integers(0, len(self.terminals), n)
        return {
            "customer_id": cust.customer_id[who],
            "ssn_hash": cust.ssn_hash[who],
            "ssn_key_version": np.full(n, self.ssn_key.version),
            "email": cust.email[who],
            "phone": cust.phone[who],
            "device_id": np.where(assisted, self.terminals[terminal], device),
            "ip_address": np.where(assisted, self.terminal_ips[terminal], ip),
            "user_agent": np.where(assisted, "LoanStream-Assisted/3.2", cust.user_agent[who]),
            "channel": CHANNELS[channel],
        }

    def _behaviour(
        self, n: int, channel: np.ndarray, is_fraud: np.ndarray, default_p: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Session and form-fill times, attempts, funnel stage and processing time.
        Scripted fraud fills forms fast and retries more."""
        rng = self.rng
        session, form = session_times(rng, channel)
        session[is_fraud] = np.round(rng.lognormal(np.log(95), 0.4, int(is_fraud.sum())), 1)
        form[is_fraud] = np.round(session[is_fraud] * 0.9, 1)
        attempts = 1 + rng.poisson(np.where(is_fraud, 1.6, 0.15))
        status = funnel(rng, channel, default_p)
        return {
            "session_seconds": session,
            "form_fill_seconds": form,
            "attempts": attempts,
            "status": status,
            "processing_ms": processing_ms(rng, channel, status),
        }
