"""The access line every request writes (``kit/http.py``) keeps personal IDs out of the log:
the clinician's routes carry the patient's 12-digit personal ID in the address."""

from __future__ import annotations

import logging
import re

import httpx
import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from structlog.testing import LogCapture

from tests.identity.test_api import sign_in_as
from tests.sharing.test_access import DOCTOR, world
from vnehr.kit import http
from vnehr.kit.settings import Settings


async def test_personal_ids_in_addresses_are_masked_in_the_access_lines(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    page = await client.get("/clinic")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    lines = LogCapture()
    monkeypatch.setattr(http, "log", structlog.wrap_logger(None, processors=[lines]))
    caplog.set_level(logging.INFO, logger="vnehr.http")
    await client.get(f"/api/v1/patients/{patient[0]}/record")
    await client.get("/clinic/patient", params={"id": patient[0]})
    await client.post(f"/clinic/patient/{patient[0]}/code", data={"csrf": token[1], "code": "1"})
    await client.get("/portal/book/visits/123456789012345")
    masked = f"{patient[0][:3]}*******{patient[0][-2:]}"
    assert [e["path"] for e in lines.entries if e["event"] == "request"] == [
        f"/api/v1/patients/{masked}/record",
        "/clinic/patient",  # the page's look-up form sends the ID in the query, not logged
        f"/clinic/patient/{masked}/code",
        "/portal/book/visits/123456789012345",  # a longer number is not a personal ID
    ]
    assert not any(patient[0] in str(e) for e in lines.entries)
