"""Identity pools and customers: Faker fills small pools once, numpy draws everything per event.

A customer keeps one customer_id, name, email, phone, SSN hash, usual device and home IP across all
of their applications. SSNs are synthetic and only their keyed hash ever leaves here: HMAC-SHA-256
with a secret key (`SsnKey`, LOANS_GEN_SSN_KEY from .loans/secrets.env, made by `make up`), so a
dictionary of the ~9x10^8 possible SSNs does not invert them without the key. The key's version
travels with each hash (`ssn_key_version`); rotating the key (`make rotate-ssn-key`) gives every SSN
a new hash from then on.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from functools import cache

import numpy as np
from faker import Faker

EMAIL_DOMAINS = np.array(
    [
        "gmail.com",
        "yahoo.com",
        "outlook.com",
        "hotmail.com",
        "icloud.com",
        "aol.com",
        "comcast.net",
        "proton.me",
    ]
)


@dataclass(frozen=True)
class IdentityPools:
    """Strings drawn from Faker once; per-event choices index into these arrays."""

    first_names: np.ndarray
    last_names: np.ndarray
    user_agents: np.ndarray

    @classmethod
    def build(cls, seed: int, size: int = 500) -> IdentityPools:
        fake = Faker("en_US")
        fake.seed_instance(seed)
        return cls(
            first_names=np.array(sorted({fake.first_name().lower() for _ in range(size * 2)})),
            last_names=np.array(sorted({fake.last_name().lower() for _ in range(size * 2)})),
            user_agents=np.array([fake.user_agent() for _ in range(size)]),
        )


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SsnKey:
    """The secret the SSN hashes are keyed with, and its version."""

    secret: bytes
    version: int

    def __repr__(self) -> str:  # never the secret
        return f"SsnKey(version={self.version})"

    @classmethod
    def configured(cls) -> SsnKey:
        """LOANS_GEN_SSN_KEY and its version from settings; without one, a key for this process only
        (said once): hashes then do not match across runs, so cross-run fraud signals on SSN miss."""
        from core.settings import GeneratorSettings, load

        settings = load(GeneratorSettings)
        if secret := settings.ssn_key.get_secret_value():
            return cls(secret.encode(), settings.ssn_key_version)
        return _ephemeral()


@cache
def _ephemeral() -> SsnKey:
    log.warning(
        "LOANS_GEN_SSN_KEY is not set: SSN hashes use a key made for this run only (make up creates one)"
    )
    return SsnKey(secrets.token_bytes(32), 1)


def ssn_hashes(rng: np.random.Generator, n: int, key: SsnKey) -> np.ndarray:
    """HMAC-SHA-256 hex digests, keyed with `key`, of `n` synthetic SSNs (area 001-899, never 666)."""
    area = rng.integers(1, 900, n)
    area[area == 666] = 667
    group, serial = rng.integers(1, 100, n), rng.integers(1, 10_000, n)
    return np.array(
        [
            hmac.new(key.secret, f"{a:03d}-{g:02d}-{s:04d}".encode(), hashlib.sha256).hexdigest()
            for a, g, s in zip(area, group, serial, strict=True)
        ]
    )


def hex_ids(rng: np.random.Generator, n: int, prefix: str, digits: int = 12) -> np.ndarray:
    """`prefix` + `digits` random hex characters, e.g. device ids `dev-3fa9c2e01b7d`."""
    if n == 0:
        return np.array([], dtype=str)
    values = rng.integers(0, 16 ** min(digits, 15), n, dtype=np.int64)
    return np.char.add(prefix, np.char.zfill(np.char.mod("%x", values), digits))


def join(sep: str, parts: list[np.ndarray]) -> np.ndarray:
    """Element-wise `sep.join` of equally long string arrays, vectorised."""
    out = parts[0].astype(str)
    for part in parts[1:]:
        out = np.char.add(np.char.add(out, sep), part)
    return out


def phones(rng: np.random.Generator, n: int) -> np.ndarray:
    """US-style numbers `+1-AAA-EEE-NNNN` (area codes 201-989)."""
    area, exchange, line = rng.integers(201, 990, n), rng.integers(200, 1000, n), rng.integers(0, 10_000, n)
    return join(
        "-", [np.full(n, "+1"), area.astype(str), exchange.astype(str), np.char.zfill(line.astype(str), 4)]
    )


def ipv4s(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random public-looking IPv4 addresses (first octet 11-223, skipping 127, 169, 172, 192)."""
    octets = rng.integers(1, 255, (n, 4))
    first = rng.integers(11, 224, n)
    first[np.isin(first, [127, 169, 172, 192])] = 73
    octets[:, 0] = first
    return join(".", [octets[:, i].astype(str) for i in range(4)])


@dataclass(frozen=True)
class Customers:
    """A population of customers, one row per index in each array."""

    customer_id: np.ndarray
    email: np.ndarray
    phone: np.ndarray
    ssn_hash: np.ndarray
    device_id: np.ndarray
    home_ip: np.ndarray
    user_agent: np.ndarray

    def __len__(self) -> int:
        return len(self.customer_id)

    @classmethod
    def build(cls, rng: np.random.Generator, pools: IdentityPools, n: int, key: SsnKey) -> Customers:
        first = pools.first_names[rng.integers(0, len(pools.first_names), n)]
        last = pools.last_names[rng.integers(0, len(pools.last_names), n)]
        number = rng.integers(1, 1000, n).astype(str)
        local = np.char.add(np.char.add(np.char.add(first, "."), last), number)
        email = np.char.add(np.char.add(local, "@"), EMAIL_DOMAINS[rng.integers(0, len(EMAIL_DOMAINS), n)])
        columns = {
            "customer_id": np.char.add("cus-", np.char.zfill(np.arange(n).astype(str), 8)),
            "email": email,
            "phone": phones(rng, n),
            "ssn_hash": ssn_hashes(rng, n, key),
            "device_id": hex_ids(rng, n, "dev-"),
            "home_ip": ipv4s(rng, n),
            "user_agent": pools.user_agents[rng.integers(0, len(pools.user_agents), n)],
        }
        # object arrays: picking rows per event copies pointers, not fixed-width UTF-32 strings
        return cls(**{name: values.astype(object) for name, values in columns.items()})
