"""Fraud rings: small groups that reuse a few devices, IPs, SSN hashes and phones across many
synthetic identities, in bursts, so streaming velocity features carry real signal.

Each ring owns a handful of identifiers and synthetic identities (own customer_id and email);
any of its applications combines one identity with one of the ring's devices, IPs, SSNs and phones.
Rings take turns: in each 10-minute slot of event time only some rings are active.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generator.identity import EMAIL_DOMAINS, IdentityPools, SsnKey, hex_ids, ipv4s, join, phones, ssn_hashes

SLOT_SECONDS = 600


@dataclass(frozen=True)
class FraudRings:
    """Identifiers per ring, as (rings, k) arrays; `active` rings run in each time slot."""

    ring_id: np.ndarray
    devices: np.ndarray
    ips: np.ndarray
    ssn_hashes: np.ndarray
    phones: np.ndarray
    identities: np.ndarray  # customer ids
    emails: np.ndarray
    active: int

    @classmethod
    def build(cls, rng: np.random.Generator, pools: IdentityPools, rings: int, key: SsnKey) -> FraudRings:
        def per_ring(values: np.ndarray, k: int) -> np.ndarray:
            return values.reshape(rings, k)

        k_id = 12
        first = pools.first_names[rng.integers(0, len(pools.first_names), rings * k_id)]
        last = pools.last_names[rng.integers(0, len(pools.last_names), rings * k_id)]
        domains = EMAIL_DOMAINS[rng.integers(0, len(EMAIL_DOMAINS), rings * k_id)]
        emails = np.char.add(
            np.char.add(join("", [first, last, rng.integers(10, 99, rings * k_id).astype(str)]), "@"), domains
        )
        return cls(
            ring_id=np.char.add("ring-", np.char.zfill(np.arange(rings).astype(str), 3)),
            devices=per_ring(hex_ids(rng, rings * 3, "dev-"), 3),
            ips=per_ring(ipv4s(rng, rings * 3), 3),
            ssn_hashes=per_ring(ssn_hashes(rng, rings * 4, key), 4),
            phones=per_ring(phones(rng, rings * 3), 3),
            identities=per_ring(hex_ids(rng, rings * k_id, "cus-f", digits=7), k_id),
            emails=per_ring(emails, k_id),
            active=max(1, rings // 5),
        )

    def __len__(self) -> int:
        return len(self.ring_id)

    def assign(self, rng: np.random.Generator, epoch_seconds: np.ndarray) -> dict[str, np.ndarray]:
        """Identity columns for fraudulent applications at the given event times."""
        n = len(epoch_seconds)
        slot = (epoch_seconds // SLOT_SECONDS).astype(np.int64)
        ring = (slot * 7 + rng.integers(0, self.active, n)) % len(self)

        def pick(table: np.ndarray) -> np.ndarray:
            return table[ring, rng.integers(0, table.shape[1], n)]

        identity = rng.integers(0, self.identities.shape[1], n)
        return {
            "ring": self.ring_id[ring],
            "customer_id": self.identities[ring, identity],
            "email": self.emails[ring, identity],
            "ssn_hash": pick(self.ssn_hashes),
            "phone": pick(self.phones),
            "device_id": pick(self.devices),
            "ip_address": pick(self.ips),
        }
