"""Fuzzing the HTTP API from its own OpenAPI schema: no input, valid or not, gets a 5xx.

schemathesis generates requests for every operation, both conforming to the
schema and deliberately breaking it, sends them with a valid API key to the
app in-process, and checks that no answer is a server error and that every
answer matches the responses the schema declares.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed (pip install -e '.[server]')")
schemathesis = pytest.importorskip("schemathesis", reason="the test extra is not installed (pip install -e '.[test]')")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

import geotarget  # noqa: E402
from geotarget.sample import sample_customers, sample_neighborhoods, sample_stores  # noqa: E402
from geotarget.service import KeyRing, ServiceSettings  # noqa: E402
from geotarget.service._app import build_app  # noqa: E402

KEY = "fuzz-key-0123456789abcdef"


def _engine():
    eng = geotarget.open(":memory:")
    eng.ingest_customers(sample_customers(3_000, seed=9))
    eng.ingest_stores(sample_stores(8, seed=9))
    eng.ingest_regions(sample_neighborhoods(10, seed=9), layer="hoods", id_col="hood_id")
    if hasattr(eng, "create_campaign"):
        eng.create_campaign("fuzz-seed", stores=["S001"], radius="2mi", metadata={"offer": "1 free"})
    return eng


# The schema is read at import (schemathesis's fixture-based loader does not work with pytest 9);
# the engine is attached by a fixture, so that no database is open outside the tests.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", build_app(None, keys=KeyRing([f"{KEY}=lookup+analyst+audiences+pii+admin"]),
                               settings=ServiceSettings(), owns_engine=False))


@pytest.fixture(scope="module", autouse=True)
def _engine_attached():
    eng = _engine()
    schema.app.state.engine = eng
    yield
    schema.app.state.engine = None
    eng.close()


@schema.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
def test_no_input_gets_a_server_error(case):
    case.call_and_validate(headers={"X-API-Key": KEY}, checks=[
        not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance])
