"""`make status` beyond the broker and MLflow: the Spark job (and monitoring), the producer, the API
and the dashboard, each found at the address its settings give and read from its own metrics or
health endpoint. A part not started is `not running`; a job with a query restarting or stopped, or a
lag that keeps growing, is a problem (exit 1, with the broker or MLflow down)."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from time import time

from prometheus_client.parser import text_string_to_metric_families

from core.settings import MetricsSettings

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class Part:
    name: str
    state: str  # "not running", "running", "problem: ..."
    where: str
    detail: str = ""

    @property
    def problem(self) -> bool:
        return self.state.startswith("problem")


def _get(url: str) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - http URLs from settings
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return None


def scrape(url: str) -> Samples | None:
    if (answer := _get(url)) is None or answer[0] != 200:
        return None
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer[1])
        for s in family.samples
    }


def _per_query(samples: Samples, name: str) -> dict[str, float]:
    return {dict(labels)["query"]: v for (n, labels), v in samples.items() if n == name}


def job(name: str, url: str) -> Part:
    """A Spark job from its metrics (`sparky.metrics`): queries, last batch age, input rate, lag."""
    if (samples := scrape(url)) is None:
        return Part(name, "not running", url)
    active = _per_query(samples, "loans_job_query_active")
    last = _per_query(samples, "loans_job_last_batch_timestamp_seconds")
    rate = sum(_per_query(samples, "loans_job_input_rows_per_second").values())
    growing = sorted(q for q, v in _per_query(samples, "loans_job_lag_growing").items() if v)
    lag: dict[str, float] = {}
    for (n, labels), value in samples.items():
        if n == "loans_job_lag_records":
            topic = dict(labels)["topic"]
            lag[topic] = max(lag.get(topic, 0.0), value)
    age = f"last batch {time() - min(last.values()):.0f} s ago" if last else "no batch yet"
    lags = ", ".join(f"{t} {v:,.0f}" for t, v in sorted(lag.items())) or "-"
    detail = f"queries {', '.join(sorted(active))}; {age}; in {rate:,.0f}/s; lag {lags}"
    failures = _per_query(samples, "loans_job_query_failures")
    restarting = sorted(q for q, v in _per_query(samples, "loans_job_query_restarting").items() if v)
    stopped = sorted(q for q, v in active.items() if not v and q not in restarting)
    if restarting:
        why = "restarting: " + ", ".join(
            f"{q} ({failures.get(q, 0):.0f} failures in a row)" for q in restarting
        )
    elif stopped:
        why = f"stopped: {', '.join(stopped)}"
    elif growing:
        why = f"lag keeps growing: {', '.join(growing)}"
    else:
        return Part(name, "running", url, detail)
    return Part(name, f"problem: {why}", url, detail)


def producer(url: str) -> Part:
    if (samples := scrape(url)) is None:
        return Part("producer", "not running", url)
    sent, delivered, failed = (
        samples.get((f"loans_producer_{k}_total", ()), 0) for k in ("sent", "delivered", "failed")
    )
    detail = f"sent {sent:,.0f}, delivered {delivered:,.0f}, failed {failed:,.0f}"
    return Part("producer", "problem: deliveries failed" if failed else "running", url, detail)


def api(url: str) -> Part:
    if (answer := _get(f"{url}/health")) is None:
        return Part("api", "not running", url)
    status, body = answer
    return Part("api", "running" if status == 200 else "running, no model", url, body[:120])


def dashboard(url: str) -> Part:
    answer = _get(url)
    return Part("dashboard", "running" if answer and answer[0] == 200 else "not running", url)


def parts(metrics: MetricsSettings, api_host: str, api_port: int, dashboard_port: int) -> list[Part]:
    base = f"http://{metrics.host}"
    return [
        job("spark job", f"{base}:{metrics.job_port}/metrics"),
        job("monitoring", f"{base}:{metrics.monitor_port}/metrics"),
        producer(f"{base}:{metrics.producer_port}/metrics"),
        api(f"http://{api_host}:{api_port}"),
        dashboard(f"http://{api_host}:{dashboard_port}"),
    ]
