"""A property-based run against the API's own OpenAPI spec (schemathesis generates the requests,
valid and not, from the spec the API serves), over real HTTP: the answer is never a server error."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from core.ports import free_port
from core.settings import ServingSettings
from serving.api import create_app
from serving.server import running
from tests.unit.test_serving_api import FicoScorer, holder


def test_no_request_the_spec_allows_or_not_gives_a_server_error() -> None:
    h = holder(FicoScorer())
    app = create_app(h, ServingSettings(max_batch=50, max_body_bytes=64_000))
    with running(app, "127.0.0.1", free_port()) as url:
        assert h.wait_ready(10) is not None
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
        assert {op.path for op in operations} >= {"/predict", "/predict/batch", "/model", "/health"}
        seen: dict[str, set[int]] = {}
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def check(case: schemathesis.Case) -> None:
                response = case.call(base_url=url)
                seen.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)
                assert response.status_code < 500, f"{case.method} {case.path}: {response.text[:300]}"

            check()
    assert {200, 422} <= seen["POST /predict"], seen  # valid and invalid bodies were both sent
