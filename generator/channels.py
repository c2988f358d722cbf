"""Channels and the application funnel: each channel has its own behaviour and conversion.

Funnel per application (the furthest stage reached is the event's `status`):
started --(channel completion rate)--> submitted --(credit decision)--> approved | declined
approved --(take-up rate)--> funded. A few submitted applications stay in manual review.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.events import ApplicationStatus, Channel


@dataclass(frozen=True)
class ChannelProfile:
    """How applicants behave on one channel. Times are log-normal: median and log-sd."""

    share: float
    completion: float  # started -> submitted
    session_median_s: float
    form_fill_share: float  # form fill as a share of the session
    processing_median_ms: float
    shared_device: bool  # branch kiosks and call-centre agents serve many customers


PROFILES: dict[Channel, ChannelProfile] = {
    Channel.WEB: ChannelProfile(0.42, 0.62, 540, 0.70, 850, shared_device=False),
    Channel.MOBILE_APP: ChannelProfile(0.33, 0.55, 420, 0.75, 700, shared_device=False),
    Channel.BRANCH: ChannelProfile(0.07, 0.93, 1500, 0.55, 2600, shared_device=True),
    Channel.PHONE: ChannelProfile(0.08, 0.84, 900, 0.60, 1900, shared_device=True),
    Channel.PARTNER: ChannelProfile(0.10, 0.78, 240, 0.85, 1400, shared_device=False),
}
CHANNELS = np.array([c.value for c in PROFILES])
_SHARES = np.array([p.share for p in PROFILES.values()])
_COMPLETION = np.array([p.completion for p in PROFILES.values()])
_SESSION = np.array([p.session_median_s for p in PROFILES.values()])
_FORM = np.array([p.form_fill_share for p in PROFILES.values()])
_PROCESSING = np.array([p.processing_median_ms for p in PROFILES.values()])
SHARED_DEVICE = np.array([p.shared_device for p in PROFILES.values()])

REVIEW_SHARE = 0.04  # submitted applications still in manual review
TAKE_UP = 0.78  # approved -> funded


def draw_channels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Channel index per application (into CHANNELS), by channel share."""
    return rng.choice(len(CHANNELS), n, p=_SHARES / _SHARES.sum())


def session_times(rng: np.random.Generator, channel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(session_seconds, form_fill_seconds), log-normal around each channel's medians."""
    session = _SESSION[channel] * rng.lognormal(0.0, 0.55, len(channel))
    form = session * np.clip(_FORM[channel] * rng.lognormal(0.0, 0.2, len(channel)), 0.05, 0.98)
    return np.round(session, 1), np.round(form, 1)


def funnel(rng: np.random.Generator, channel: np.ndarray, default_prob: np.ndarray) -> np.ndarray:
    """Furthest stage reached per application. Approval falls as the default probability rises."""
    n = len(channel)
    submitted = rng.random(n) < _COMPLETION[channel]
    approve = rng.random(n) < np.clip(1.0 - 2.6 * default_prob, 0.05, 0.97)
    review = rng.random(n) < REVIEW_SHARE
    funded = rng.random(n) < TAKE_UP
    status = np.full(n, ApplicationStatus.STARTED.value, dtype=object)
    status[submitted & review] = ApplicationStatus.SUBMITTED.value
    decided = submitted & ~review
    status[decided & ~approve] = ApplicationStatus.DECLINED.value
    status[decided & approve & ~funded] = ApplicationStatus.APPROVED.value
    status[decided & approve & funded] = ApplicationStatus.FUNDED.value
    return status


def processing_ms(rng: np.random.Generator, channel: np.ndarray, status: np.ndarray) -> np.ndarray:
    """Back-end processing time: decided applications take longer (bureau pull, decisioning)."""
    base = _PROCESSING[channel] * rng.lognormal(0.0, 0.45, len(channel))
    factor = np.where(status == ApplicationStatus.STARTED.value, 0.15, 1.0)
    factor = np.where(status == ApplicationStatus.SUBMITTED.value, 2.5, factor)
    return np.maximum(1, base * factor).astype(np.int64)
