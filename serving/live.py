"""Rolling aggregates of the output streams, for the dashboard. Pure Python: no Kafka, no threads.

`LiveState.add(stream, record, at_ms)` takes one parsed record of risk, fraud, stats, channel,
scores or monitor (`at_ms` is the Kafka record timestamp, so a replayed record lands in its own second, not
now); `snapshot(now_ms)` is everything the page shows, as JSON-ready dicts. Memory is bounded:
per-record views keep the last `keep` records, throughput the last `RATE_HORIZON_S` seconds, windows
the last `WINDOWS_KEPT` window starts.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from core.settings import CHAMPION

STREAMS = ("risk", "fraud", "stats", "channel", "scores", "monitor")  # of core.streams: what the page shows
BANDS = ("low", "medium", "high", "very_high")
BINS = 20  # histogram bins over [0, 1]
RATE_SPAN_S = 10  # applications/s is the mean over this many whole seconds
RATE_HORIZON_S = 60  # the per-second series the page draws
WINDOWS_KEPT = 30
CHANNEL_WINDOWS = 5  # channel rates sum the latest this many windows
ALERTS_KEPT = 20
FUNNEL = ("applications", "submitted", "approved", "declined")


def _bin(value: float) -> int:
    return min(BINS - 1, max(0, int(value * BINS)))


def _rate(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 4) if denominator > 0 else None


def _number(value: Any) -> float | None:
    """A finite float, or None for anything else (missing, null, text, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class Rolling:
    """Counts of a categorical value and a [0, 1] histogram over the last `keep` records."""

    keep: int
    entries: deque[tuple[str | None, int | None]] = field(default_factory=deque)
    labels: Counter[str] = field(default_factory=Counter)
    bins: list[int] = field(default_factory=lambda: [0] * BINS)

    def add(self, label: str | None, score: float | None) -> None:
        entry = (label, _bin(score) if score is not None else None)
        self.entries.append(entry)
        self._count(entry, 1)
        if len(self.entries) > self.keep:
            self._count(self.entries.popleft(), -1)

    def _count(self, entry: tuple[str | None, int | None], sign: int) -> None:
        label, bin_ = entry
        if label is not None:
            self.labels[label] += sign
        if bin_ is not None:
            self.bins[bin_] += sign


class LiveState:
    """Thread-safe: the consumer thread adds, request handlers take snapshots."""

    def __init__(self, keep: int = 5_000) -> None:
        self._lock = threading.Lock()
        self.keep = keep
        self.messages: Counter[str] = Counter()
        self.last_at_ms: dict[str, int] = {}
        self.skipped = 0
        self.per_second: Counter[int] = Counter()  # risk records (one per valid application) by second
        self.risk = Rolling(keep)
        self.risk_alerts = 0
        self.scores = Rolling(keep)
        self.models: Counter[str] = Counter()
        self.latest_model: dict[str, Any] | None = None
        self.score_errors = 0
        self.fraud: deque[dict[str, Any]] = deque(maxlen=ALERTS_KEPT)
        self.windows: dict[str, dict[str, Any]] = {}
        self.channels: dict[tuple[str, str], dict[str, Any]] = {}
        self.monitor: dict[tuple[str, str, str], dict[str, Any]] = {}  # (window, version, alias) -> latest

    def add(self, stream: str, record: Any, at_ms: int) -> None:
        """Fold one record in; a record that is not a JSON object is counted as skipped."""
        with self._lock:
            if not isinstance(record, dict) or stream not in STREAMS:
                self.skipped += 1
                return
            self.messages[stream] += 1
            self.last_at_ms[stream] = max(at_ms, self.last_at_ms.get(stream, 0))
            getattr(self, f"_add_{stream}")(record, at_ms)

    def _add_risk(self, record: dict[str, Any], at_ms: int) -> None:
        second = at_ms // 1000
        self.per_second[second] += 1
        if len(self.per_second) > RATE_HORIZON_S * 4:
            newest = max(self.per_second)
            for old in [s for s in self.per_second if s <= newest - RATE_HORIZON_S * 2]:
                del self.per_second[old]
        band = record.get("risk_band")
        self.risk.add(band if isinstance(band, str) else None, _number(record.get("risk_score")))
        self.risk_alerts += record.get("alert") is True

    def _add_scores(self, record: dict[str, Any], at_ms: int) -> None:
        if record.get("shadow") is True:  # a challenger's score: not a decision
            return
        decision = record.get("decision")
        self.scores.add(
            decision if isinstance(decision, str) else None, _number(record.get("default_probability"))
        )
        if record.get("error"):
            self.score_errors += 1
        if record.get("model_version") is not None:
            label = f"{record.get('model_name')} v{record.get('model_version')}"
            self.models[label] += 1
            self.latest_model = {
                "name": record.get("model_name"),
                "version": str(record.get("model_version")),
                "at_ms": at_ms,
            }

    def _add_fraud(self, record: dict[str, Any], at_ms: int) -> None:
        signals = {
            k: v
            for k, v in record.items()
            if k.split("_")[0] in ("device", "ip", "ssn", "phone") and isinstance(v, int | float) and v
        }
        self.fraud.appendleft(
            {
                "application_id": record.get("application_id"),
                "event_time": record.get("event_time"),
                "channel": record.get("channel"),
                "fraud_score": _number(record.get("fraud_score")),
                "reasons": record.get("reasons") or [],
                "signals": signals,
                "at_ms": at_ms,
            }
        )

    def _add_stats(self, record: dict[str, Any], _at_ms: int) -> None:
        start = record.get("window_start")
        if isinstance(start, str):  # update mode: the newest record of a window replaces the older
            self.windows[start] = record
            for old in sorted(self.windows)[:-WINDOWS_KEPT]:
                del self.windows[old]

    def _add_channel(self, record: dict[str, Any], _at_ms: int) -> None:
        start, channel = record.get("window_start"), record.get("channel")
        if isinstance(start, str) and isinstance(channel, str):
            self.channels[(start, channel)] = record
            starts = sorted({s for s, _ in self.channels})
            if len(starts) > WINDOWS_KEPT:
                for key in [k for k in self.channels if k[0] < starts[-WINDOWS_KEPT]]:
                    del self.channels[key]

    def _add_monitor(self, record: dict[str, Any], _at_ms: int) -> None:
        key = (record.get("window_start"), record.get("model_version"), record.get("model_alias"))
        if all(isinstance(k, str) for k in key):  # update mode: the newest record of a window replaces
            self.monitor[key] = record  # type: ignore[index]
            starts = sorted({k[0] for k in self.monitor})
            for old in [k for k in self.monitor if k[0] < starts[-WINDOWS_KEPT:][0]]:
                del self.monitor[old]

    def _monitoring(self) -> dict[str, Any]:
        """Per model version and alias, its newest window; and how many kept windows raised the alarm."""
        newest: dict[tuple[str, str], dict[str, Any]] = {}
        for (_, version, alias), record in sorted(self.monitor.items()):
            newest[(version, alias)] = record
        return {
            "latest": [newest[k] for k in sorted(newest, key=lambda k: (k[1] != CHAMPION, k))],
            "alarms": sum(r.get("drift_alarm") is True for r in self.monitor.values()),
            "windows": len({k[0] for k in self.monitor}),
        }

    def snapshot(self, now_ms: int) -> dict[str, Any]:
        """Everything the page shows; times are epoch milliseconds, rates fractions in [0, 1]."""
        with self._lock:
            return {
                "now_ms": now_ms,
                "messages": dict(self.messages),
                "last_at_ms": dict(self.last_at_ms),
                "skipped": self.skipped,
                "throughput": self._throughput(now_ms),
                "stats": self._stats(),
                "channels": self._channels(),
                "risk": {
                    "count": len(self.risk.entries),
                    "bands": {b: self.risk.labels.get(b, 0) for b in BANDS},
                    "histogram": list(self.risk.bins),
                    "alerts": self.risk_alerts,
                },
                "fraud": {"count": self.messages["fraud"], "alerts": list(self.fraud)},
                "monitor": self._monitoring(),
                "scores": {
                    "count": len(self.scores.entries),
                    "histogram": list(self.scores.bins),
                    "decisions": {k: v for k, v in self.scores.labels.items() if v},
                    "errors": self.score_errors,
                    "model": self.latest_model,
                    "models": dict(self.models.most_common(5)),
                },
            }

    def _throughput(self, now_ms: int) -> dict[str, Any]:
        now_s = now_ms // 1000
        series = [self.per_second.get(s, 0) for s in range(now_s - RATE_HORIZON_S, now_s)]
        return {
            "applications_per_second": round(sum(series[-RATE_SPAN_S:]) / RATE_SPAN_S, 1),
            "series": series,  # whole seconds, oldest first; the current (partial) second left out
            "total": self.messages["risk"],
        }

    def _stats(self) -> dict[str, Any] | None:
        if not self.windows:
            return None
        latest = self.windows[max(self.windows)]
        return {
            "latest": latest,
            "recent": [
                {k: self.windows[s].get(k) for k in ("window_start", "applications", "approval_rate")}
                for s in sorted(self.windows)[-10:]
            ],
        }

    def _channels(self) -> list[dict[str, Any]]:
        starts = sorted({s for s, _ in self.channels})[-CHANNEL_WINDOWS:]
        totals: dict[str, Counter[str]] = {}
        for (start, channel), record in self.channels.items():
            if start in starts:
                sums = totals.setdefault(channel, Counter())
                for key in FUNNEL:
                    sums[key] += int(_number(record.get(key)) or 0)
        return [
            {
                "channel": channel,
                **{key: sums[key] for key in FUNNEL},
                "approval_rate": _rate(sums["approved"], sums["approved"] + sums["declined"]),
                "conversion_rate": _rate(sums["submitted"], sums["applications"]),
                "windows": len(starts),
            }
            for channel, sums in sorted(totals.items())
        ]
