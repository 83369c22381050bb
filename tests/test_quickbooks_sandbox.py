"""The QuickBooks stand-in answers in the shapes of Intuit's API reference, limits included;
and the connector's batch limiter counts in both allowances."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from connectors.http import RateLimiter
from connectors.quickbooks.client import NestedLimiter, fault_of
from sandbox.http import Faults
from sandbox.quickbooks import (
    ACCOUNTING_SCOPE,
    CLIENT_ID,
    CLIENT_SECRET,
    REALM_ID,
    QuickBooksStandIn,
)
from sandbox.synthetic import BusinessSpec

TINY = BusinessSpec(seed=4, customers=30)
BASIC = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()


@pytest.fixture
def stand_in() -> Iterator[QuickBooksStandIn]:
    with QuickBooksStandIn(TINY) as server:
        yield server


def tokens(stand_in: QuickBooksStandIn) -> dict[str, Any]:
    consent = (
        f"{stand_in.url}/connect/oauth2?client_id={CLIENT_ID}&scope={ACCOUNTING_SCOPE}"
        "&redirect_uri=https://x.example/cb&state=s1&response_type=code"
    )
    back = parse_qs(urlsplit(stand_in.consent(consent)).query)
    assert back["state"] == ["s1"] and back["realmId"] == [REALM_ID]
    answer = requests.post(
        f"{stand_in.url}/oauth2/v1/tokens/bearer",
        data={
            "grant_type": "authorization_code",
            "code": back["code"][0],
            "redirect_uri": "https://x.example/cb",
        },
        headers={"Authorization": BASIC},
        timeout=5,
    )
    assert answer.status_code == 200
    return dict(answer.json())


def query(stand_in: QuickBooksStandIn, token: str, statement: str) -> requests.Response:
    return requests.post(
        f"{stand_in.url}/v3/company/{REALM_ID}/query",
        params={"minorversion": "75"},
        data=statement,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/text"},
        timeout=5,
    )


def test_token_answers_carry_the_hard_expiry_and_refuse_unknown_clients(
    stand_in: QuickBooksStandIn,
) -> None:
    answer = tokens(stand_in)

    assert set(answer) == {
        "token_type",
        "access_token",
        "expires_in",
        "refresh_token",
        "x_refresh_token_expires_in",
    }
    assert answer["expires_in"] == 3600
    refused = requests.post(
        f"{stand_in.url}/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": answer["refresh_token"]},
        headers={"Authorization": "Basic bm9ib2R5Om5vdGhpbmc="},
        timeout=5,
    )
    assert (refused.status_code, refused.json()) == (401, {"error": "invalid_client"})


def test_query_pages_and_their_limits(stand_in: QuickBooksStandIn) -> None:
    token = tokens(stand_in)["access_token"]

    page = query(stand_in, token, "SELECT * FROM Customer STARTPOSITION 11 MAXRESULTS 5").json()
    default = query(stand_in, token, "SELECT * FROM Customer").json()
    by_get = requests.get(
        f"{stand_in.url}/v3/company/{REALM_ID}/query",
        params={"query": "SELECT * FROM Customer STARTPOSITION 11 MAXRESULTS 5"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    ).json()
    too_many = query(stand_in, token, "SELECT * FROM Customer MAXRESULTS 1001")
    unknown = query(stand_in, token, "SELECT * FROM Customer WHERE Balance > '3'")

    response = page["QueryResponse"]
    assert [c["Id"] for c in response["Customer"]] == ["11", "12", "13", "14", "15"]
    assert (response["startPosition"], response["maxResults"]) == (11, 5)
    assert by_get["QueryResponse"] == response
    assert datetime.fromisoformat(page["time"]).tzinfo is not None
    assert len(default["QueryResponse"]["Customer"]) == len(stand_in.company.live("Customer"))
    assert too_many.status_code == unknown.status_code == 400
    assert fault_of(too_many.json()) is not None


def test_cdc_looks_back_30_days_and_reports_deletions(stand_in: QuickBooksStandIn) -> None:
    token = tokens(stand_in)["access_token"]
    since = stand_in.company.now() - timedelta(minutes=1)
    invoice = stand_in.company.live("Invoice")[0]["Id"]
    stand_in.company.delete("Invoice", invoice)
    stand_in.company.update("Customer", "2", DisplayName="Changed")

    def cdc(moment: datetime) -> requests.Response:
        return requests.get(
            f"{stand_in.url}/v3/company/{REALM_ID}/cdc",
            params={"entities": "Customer,Invoice", "changedSince": moment.isoformat()},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )

    answer = cdc(since).json()
    old = cdc(datetime.now(UTC) - timedelta(days=31))

    (block,) = answer["CDCResponse"]
    by_entity = {key: value for r in block["QueryResponse"] for key, value in r.items()}
    assert [c["DisplayName"] for c in by_entity["Customer"]] == ["Changed"]
    assert by_entity["Invoice"] == [
        {
            "domain": "QBO",
            "status": "Deleted",
            "Id": invoice,
            "MetaData": by_entity["Invoice"][0]["MetaData"],
        }
    ]
    assert old.status_code == 400
    fault = fault_of(old.json())
    assert fault is not None and fault.type == "ValidationFault"


def test_throttled_answers_are_quickbooks_faults_with_retry_after() -> None:
    with QuickBooksStandIn(TINY, faults=Faults(throttle=1.0, retry_after=2)) as stand_in:
        answer = query(stand_in, "whatever", "SELECT * FROM Customer")

    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "2"
    fault = fault_of(answer.json())
    assert fault is not None and (fault.type, fault.code) == ("ThrottleExceeded", "3001")


def test_calls_without_a_valid_token_are_refused(stand_in: QuickBooksStandIn) -> None:
    answer = query(stand_in, "not-a-token", "SELECT * FROM Customer")

    assert answer.status_code == 401
    fault = fault_of(answer.json())
    assert fault is not None and fault.type == "AUTHENTICATION"


def test_batch_calls_count_in_the_batch_allowance_and_the_companys() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    company = RateLimiter(1, 60.0, 10, clock=lambda: now[0], sleep=sleep)
    batches = NestedLimiter(5, 60.0, company)

    with batches.slot():
        pass
    with company.slot():  # the batch call used the company's only request of the minute
        pass

    assert waits == [60.0]
