"""NUL in a resource never becomes a 500 or a stored row, however the body is typed or encoded
(D76): the middleware refuses the usual JSON; what gets past it (another media type, UTF-16
or UTF-32 JSON) is refused where it would be stored, on both databases."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fhir.test_api import FHIR
from tests.submissions.test_intake import facility_with_token
from vnehr.fhir.models import StoredResource
from vnehr.kit.settings import Settings

WRITER = ("submission.write", "record.read")
BODY = '{"resourceType": "Observation", "status": "final", "code": {"text": "M\\u0000ach"}}'


@pytest.mark.parametrize(
    ("media_type", "encoding"),
    [
        ("application/fhir+json", "utf-8"),
        ("text/plain", "utf-8"),
        ("application/fhir+xml", "utf-8"),
        ("application/fhir+json", "utf-16"),
        ("application/json", "utf-32"),
    ],
)
async def test_a_nul_in_a_resource_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    media_type: str,
    encoding: str,
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    refused = await client.post(
        f"{FHIR}/Observation",
        content=BODY.encode(encoding),
        headers={**headers, "content-type": media_type},
    )
    assert refused.status_code == 400, refused.text
    assert "KIT-0002" in refused.text
    stored = await session.scalar(select(func.count()).select_from(StoredResource))
    assert stored == 0
