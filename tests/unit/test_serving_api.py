"""The prediction API's HTTP contract over a scorer with a known formula (no registry, no MLflow):
422 names each bad field, 503 says why, answers come from the scorer row by row, single requests
that arrive together are scored in one call."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import numpy as np
import pytest

from core.errors import ConfigError
from core.ports import free_port
from core.settings import MlflowSettings, ServingSettings
from serving.api import create_app, field_path
from serving.champion import ChampionHolder, ModelRef, Scorer
from serving.schemas import EXAMPLE
from serving.server import running

SETTINGS = MlflowSettings(tracking_uri="http://registry.invalid:5000", model_name="loans-test")


@dataclass(frozen=True)
class Ref:
    name: str
    version: str
    alias: str | None = "champion"
    run_id: str | None = "run-1"
    metrics: dict[str, float] = field(default_factory=lambda: {"auc": 0.71})


class FicoScorer:
    """probability = (850 - fico_range_low) / 1000; dti above 35 or no FICO cannot be scored (an
    error in the models' `field: what; ...` form, as a model that cannot do without FICO words it);
    optional delay."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s, self.calls = delay_s, 0

    def outputs(self, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
        self.calls += 1
        time.sleep(self.delay_s)
        probability = (850 - columns["fico_range_low"].astype(float)) / 1000
        high, no_fico = columns["dti"].astype(float) > 35, np.isnan(probability)
        bad = high | no_fico
        decision = np.where(probability < 0.15, "approve", "decline").astype(object)
        decision[bad] = None
        error = [
            "dti: above the model's range; the row: unusual"
            if h
            else "fico_range_low: missing"
            if f
            else None
            for h, f in zip(high, no_fico, strict=True)
        ]
        return np.where(bad, np.nan, probability), decision, error

    def explain(self, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, list, list]:
        """Declines give FICO_LOW with the FICO as its value."""
        probability, decision, error = self.outputs(columns)
        fico = columns["fico_range_low"]
        reasons = [
            [{"code": "FICO_LOW", "text": f"FICO {f} is low", "feature": "fico_range_low", "value": str(f),
              "contribution": 0.5}] if d == "decline" else []
            for f, d in zip(fico, decision, strict=True)
        ]  # fmt: skip
        return probability, decision, error, reasons


def holder(scorer: FicoScorer | None, version: str = "7") -> ChampionHolder:
    def resolve(settings: MlflowSettings, alias: str) -> ModelRef | None:
        return Ref(settings.model_name, version) if scorer is not None else None

    def load(settings: MlflowSettings, ref: ModelRef) -> Scorer:
        assert scorer is not None
        return scorer

    return ChampionHolder(SETTINGS, poll_seconds=60, resolve=resolve, load=load, example=EXAMPLE)


@contextmanager
def serve(h: ChampionHolder, settings: ServingSettings) -> Iterator[httpx.Client]:
    """The app under real uvicorn on a free loopback port, and a client for it."""
    with running(create_app(h, settings), "127.0.0.1", free_port()) as url, httpx.Client(base_url=url) as c:
        yield c


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    h = holder(FicoScorer())
    with serve(h, ServingSettings(max_batch=5)) as c:
        assert h.wait_ready(10) is not None
        yield c


def test_predict_answers_with_the_scorers_probability_and_version(client: httpx.Client) -> None:
    response = client.post("/predict", json={**EXAMPLE, "fico_range_low": 760, "application_id": "a-1"})
    assert response.status_code == 200
    assert response.json() == {
        "application_id": "a-1",
        "probability": pytest.approx(0.09),
        "decision": "approve",
        "model_name": "loans-test",
        "model_version": "7",
        "reasons": [],
    }
    declined = client.post("/predict", json={**EXAMPLE, "fico_range_low": 650}).json()
    assert declined["decision"] == "decline"
    assert [(r["code"], r["value"]) for r in declined["reasons"]] == [("FICO_LOW", "650")]


def test_batch_keeps_request_order_and_reports_rows_the_model_cannot_score(client: httpx.Client) -> None:
    rows = [{**EXAMPLE, "fico_range_low": f, "application_id": f"a{f}"} for f in (800, 700, 600)]
    rows.insert(1, {**EXAMPLE, "dti": 40.0, "application_id": "bad"})
    body = client.post("/predict/batch", json={"applications": rows}).json()
    assert body["model_version"] == "7"
    got = [(p["application_id"], p["probability"], p["decision"], p["error"]) for p in body["predictions"]]
    assert got == [
        ("a800", pytest.approx(0.05), "approve", None),
        ("bad", None, None, "dti: above the model's range; the row: unusual"),
        ("a700", pytest.approx(0.15), "decline", None),
        ("a600", pytest.approx(0.25), "decline", None),
    ]
    assert [len(p["reasons"]) for p in body["predictions"]] == [0, 0, 1, 1]


def test_an_application_the_model_cannot_score_is_a_422_with_the_models_reason(client: httpx.Client) -> None:
    response = client.post("/predict", json={**EXAMPLE, "dti": 40.0})
    assert response.status_code == 422
    assert response.json()["errors"] == [  # the scorer's `field: what; ...`, one entry per part
        {"field": "dti", "message": "above the model's range", "input": 40.0},
        {"field": "body", "message": "the row: unusual", "input": None},
    ]


def test_validation_names_every_bad_field(client: httpx.Client) -> None:
    bad = {**EXAMPLE, "loan_amnt": 10, "sub_grade": "Z9", "surprise": 1}
    del bad["purpose"]  # required; FICO may be missing (models.features.inputs.MAY_BE_MISSING)
    response = client.post("/predict", params={"strict": "true"}, json=bad)  # strict: refuses `surprise`
    assert response.status_code == 422
    problems = {p["field"]: p for p in response.json()["errors"]}
    assert set(problems) == {"loan_amnt", "sub_grade", "surprise", "purpose"}
    assert problems["loan_amnt"]["message"] == "Input should be greater than or equal to 500"
    assert problems["loan_amnt"]["input"] == 10
    assert problems["purpose"]["message"] == "Field required"
    assert problems["purpose"]["input"] is None  # not the whole body again
    assert response.json()["detail"].startswith("4 invalid fields:")
    lenient = {p["field"] for p in client.post("/predict", json=bad).json()["errors"]}
    assert lenient == {"loan_amnt", "sub_grade", "purpose"}  # `surprise` is ignored

    batch = {"applications": [EXAMPLE, {**EXAMPLE, "term": "long"}]}
    fields = {p["field"] for p in client.post("/predict/batch", json=batch).json()["errors"]}
    assert fields == {"applications[1].term"}
    assert (
        client.post(
            "/predict", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )


def test_batch_limits(client: httpx.Client) -> None:
    assert client.post("/predict/batch", json={"applications": [EXAMPLE] * 6}).status_code == 413
    empty = client.post("/predict/batch", json={"applications": []})
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "applications"


def test_model_and_health_describe_the_served_version(client: httpx.Client) -> None:
    model = client.get("/model").json()
    assert (model["name"], model["version"], model["alias"], model["run_id"]) == (
        "loans-test",
        "7",
        "champion",
        "run-1",
    )
    assert model["metrics"] == {"auc": 0.71} and model["status"] == "ready" and model["loaded_at"]
    assert client.get("/health").json()["status"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/predict", "/predict/batch", "/model", "/health"} <= set(paths)
    assert client.get("/docs").status_code == 200


def test_without_a_champion_every_scoring_route_is_503_with_the_reason() -> None:
    h = holder(None)
    with serve(h, ServingSettings()) as c:
        deadline = time.monotonic() + 10
        while h.status().state == "starting" and time.monotonic() < deadline:
            time.sleep(0.02)
        for response in (
            c.post("/predict", json=EXAMPLE),
            c.post("/predict/batch", json={"applications": [EXAMPLE]}),
            c.get("/model"),
        ):
            assert response.status_code == 503
            detail = response.json()["detail"]
            assert detail.startswith("no model loaded:") and "'champion'" in detail and "loans-test" in detail
        health = c.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "no_alias"
        assert c.post("/predict", json={**EXAMPLE, "dti": -1}).status_code == 422  # validation comes first


def test_requests_that_arrive_together_share_one_scorer_call() -> None:
    scorer = FicoScorer(delay_s=0.05)
    h = holder(scorer)
    with serve(h, ServingSettings()) as client:
        assert h.wait_ready(10) is not None
        url = str(client.base_url)
        calls_before = scorer.calls
        ficos = list(range(640, 800, 4))  # 40 requests, each with its own answer

        def ask(fico: int) -> dict:
            with httpx.Client(base_url=url, timeout=10) as http:
                return http.post("/predict", json={**EXAMPLE, "fico_range_low": fico}).json()

        with ThreadPoolExecutor(len(ficos)) as pool:
            answers = list(pool.map(ask, ficos))
    assert [a["probability"] for a in answers] == [pytest.approx((850 - f) / 1000) for f in ficos]
    assert scorer.calls - calls_before < len(ficos) / 2


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (("body", "dti"), "dti"),
        (("body", "applications", 3, "dti"), "applications[3].dti"),
        (("body",), "body"),
        (("body", "applications"), "applications"),
    ],
)
def test_field_path(loc: tuple[int | str, ...], path: str) -> None:
    assert field_path(loc) == path


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_number_that_is_not_finite_is_a_422_naming_the_field(client: httpx.Client, bad: str) -> None:
    body = json.dumps(EXAMPLE).replace('"dti": 18.4', f'"dti": {bad}')
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["dti"]


def test_a_long_text_field_is_a_422(client: httpx.Client) -> None:
    response = client.post("/predict", json={**EXAMPLE, "emp_title": "x" * 10_000})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "emp_title"


def test_a_body_over_the_limit_is_a_413_before_it_is_parsed() -> None:
    h = holder(FicoScorer())
    with serve(h, ServingSettings(max_body_bytes=4_096)) as c:
        big = {"applications": [EXAMPLE] * 20}  # ~13 kB
        declared = c.post("/predict/batch", json=big)
        assert declared.status_code == 413 and "LOANS_SERVE_MAX_BODY_BYTES" in declared.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield from (json.dumps(big).encode()[i : i + 1_000] for i in range(0, 13_000, 1_000))

        streamed = c.post("/predict/batch", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert c.post("/predict", json=EXAMPLE).status_code != 413  # a normal request passes


def test_a_body_that_is_not_json_is_a_415(client: httpx.Client) -> None:
    form = client.post("/predict", data={"loan_amnt": "1"})
    assert form.status_code == 415 and "application/json" in form.json()["detail"]
    none = client.post("/predict", content=json.dumps(EXAMPLE).encode(), headers={"content-type": ""})
    assert none.status_code == 415
    charset = {"content-type": "application/json; charset=utf-8"}
    assert client.post("/predict", content=json.dumps(EXAMPLE), headers=charset).status_code == 200


def test_a_full_scorer_queue_is_a_503_with_retry_after() -> None:
    h = holder(FicoScorer(delay_s=0.5))
    with serve(h, ServingSettings(max_waiting_rows=2)) as client:
        assert h.wait_ready(10) is not None
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: client.post("/predict", json=EXAMPLE), range(8)))
    codes = sorted(r.status_code for r in answers)
    assert codes.count(200) >= 2 and 503 in codes, codes
    busy = next(r for r in answers if r.status_code == 503)
    assert busy.headers["retry-after"] == "1" and busy.json()["detail"].startswith("busy:")


def test_with_an_api_key_scoring_needs_it() -> None:
    h = holder(FicoScorer())
    with serve(h, ServingSettings(api_key="s3cret-key")) as c:
        assert h.wait_ready(10) is not None
        assert c.post("/predict", json=EXAMPLE).status_code == 401
        assert c.post("/predict", json=EXAMPLE, headers={"x-api-key": "wrong"}).status_code == 401
        assert c.post("/predict/batch", json={"applications": [EXAMPLE]}).status_code == 401
        assert c.post("/predict", json=EXAMPLE, headers={"x-api-key": "s3cret-key"}).status_code == 200
        bearer = {"authorization": "Bearer s3cret-key"}
        assert c.post("/predict", json=EXAMPLE, headers=bearer).status_code == 200
        assert c.get("/health").status_code == 200  # says nothing about an applicant


def test_beyond_loopback_an_api_key_is_required() -> None:
    ServingSettings(host="127.0.0.1").require_key()
    ServingSettings(host="0.0.0.0", api_key="k", allowed_hosts="loans.example.com").require_key()  # noqa: S104
    with pytest.raises(ConfigError, match="LOANS_SERVE_API_KEY must be set"):
        ServingSettings(host="0.0.0.0").require_key()  # noqa: S104


def test_a_whole_number_beyond_64_bits_is_a_422(client: httpx.Client) -> None:
    response = client.post("/predict", json={**EXAMPLE, "open_acc": 10**30})  # found by the schemathesis run
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "open_acc"


def test_metrics_count_requests_by_path_and_status_and_show_the_version(client: httpx.Client) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    for _ in range(3):
        assert client.post("/predict", json=EXAMPLE).status_code == 200
    assert client.post("/predict", json={**EXAMPLE, "dti": "x"}).status_code == 422
    assert client.post("/predict", content=b"a", headers={"content-type": "text/plain"}).status_code == 415
    for made_up in ("/a", "/b/c", "/predict/../etc"):
        client.get(made_up)
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    requests = "loans_api_requests_total"
    assert samples[(requests, (("path", "/predict"), ("status", "200")))] == 3
    assert samples[(requests, (("path", "/predict"), ("status", "422")))] == 1
    assert samples[(requests, (("path", "/predict"), ("status", "415")))] == 1  # the guard's answer, counted
    assert samples[(requests, (("path", "other"), ("status", "404")))] == 3  # no label made up by a client
    assert samples[("loans_api_request_seconds_count", (("path", "/predict"),))] == 5
    assert samples[("loans_api_model_version", ())] == 7
    assert not any(name == "loans_api_errors_total" and value for (name, _), value in samples.items())


def test_a_batch_over_the_row_limit_is_a_413_before_any_row_is_validated(client: httpx.Client) -> None:
    """Admit before parsing: six empty rows (max_batch 5) are refused for their number, not validated
    one by one (a 16 MB body of `{}` is five million rows of errors)."""
    response = client.post("/predict/batch", json={"applications": [{}] * 6})
    assert response.status_code == 413 and "at most 5" in response.json()["detail"]


def test_backpressure_counts_rows_and_refuses_before_parsing() -> None:
    """The scorer's queue holds rows, not requests: with a 4-row batch being scored (max 6 rows
    waiting), another 4-row batch is a 503, and so is a body that is not even valid: refused before
    it is parsed."""
    h = holder(FicoScorer(delay_s=1.5))
    with serve(h, ServingSettings(max_waiting_rows=6)) as client:
        assert h.wait_ready(10) is not None
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(client.post, "/predict/batch", json={"applications": [EXAMPLE] * 4})
            time.sleep(0.5)
            second = client.post("/predict/batch", json={"applications": [EXAMPLE] * 4})
            single = client.post("/predict", json=EXAMPLE)  # 5 of 6 rows: admitted
            assert first.result().status_code == 200
    assert second.status_code == 503 and "rows" in second.json()["detail"], second.text
    assert single.status_code == 200
    with serve(h, ServingSettings(max_waiting_rows=4)) as client, ThreadPoolExecutor(1) as pool:
        first = pool.submit(client.post, "/predict/batch", json={"applications": [EXAMPLE] * 4})
        time.sleep(0.5)
        invalid = client.post("/predict/batch", json={"applications": [{"dti": "x"}]})
        assert first.result().status_code == 200
    assert invalid.status_code == 503


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.nip.io"])
def test_a_foreign_host_header_is_refused(client: httpx.Client, host: str) -> None:
    """DNS rebinding: a page on evil.example whose name now points at 127.0.0.1 reaches the API with
    `Host: evil.example`; only the names the API is known by are served."""
    response = client.get("/health", headers={"host": host})
    assert response.status_code == 400 and "LOANS_SERVE_ALLOWED_HOSTS" in response.json()["detail"]
    for known in ("127.0.0.1", "localhost:8000", "[::1]:8000"):
        assert client.get("/health", headers={"host": known}).status_code == 200, known


def test_beyond_loopback_the_allowed_hosts_must_be_named() -> None:
    with pytest.raises(ConfigError, match="LOANS_SERVE_ALLOWED_HOSTS"):
        ServingSettings(host="0.0.0.0", api_key="k").require_key()  # noqa: S104
    named = ServingSettings(host="0.0.0.0", api_key="k", allowed_hosts="loans.example.com")  # noqa: S104
    named.require_key()
    assert "loans.example.com" in named.hosts() and "localhost" in named.hosts()


def test_a_large_body_is_parsed_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing a large batch must not hold the event loop (every other request would wait for it)."""
    import threading

    import serving.api

    threads: list[str] = []
    original = serving.api.parse_body

    def recorded(body: bytes, model: type) -> object:
        threads.append(threading.current_thread().name)
        return original(body, model)

    monkeypatch.setattr(serving.api, "parse_body", recorded)
    h = holder(FicoScorer())
    with serve(h, ServingSettings()) as client:
        assert h.wait_ready(10) is not None
        assert client.post("/predict/batch", json={"applications": [EXAMPLE] * 300}).status_code == 200
    [thread] = threads
    assert not thread.startswith("uvicorn"), f"parsed on the event loop's thread {thread}"
