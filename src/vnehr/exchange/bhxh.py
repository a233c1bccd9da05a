"""Client of the BHXH health-insurance appraisal portal (§1.2 of the domain brief): token,
visit files, check-ins. Speaks the portal's shapes; the base URL, account and table variant
are settings. Every failure is a ``DeliveryFailed`` that says whether the portal may have
received the file (an answer that never came) or surely did not."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import re
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx


class DeliveryFailed(Exception):
    """An attempt that failed. ``keep``: what the attempt did before failing, stored in its
    delivery record so that the next attempt need not do it again (pushes already sent).
    ``partial``: what the attempt wrote stays (committed with its record, not rolled back)
    and the rest is retried (the inbox row stays while pushes are retried)."""

    def __init__(
        self,
        reason: str,
        *,
        maybe_received: bool = False,
        detail: Any = None,
        keep: dict[str, Any] | None = None,
        partial: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.maybe_received = maybe_received
        self.detail = detail
        self.keep = keep
        self.partial = partial


@dataclass(frozen=True, slots=True)
class PortalAnswer:
    ma_giao_dich: str
    received_at: str | None
    message: str | None


#: A base64 value: letters and digits stay as they are, "+", "/", "=" are escaped.
_BASE64 = re.compile(r"[A-Za-z0-9+/=]*")


def form_body(fields: dict[str, str]) -> bytes:
    """``application/x-www-form-urlencoded`` of the fields. A base64 file (tens of kilobytes)
    is escaped with three C-level replaces instead of quoting it character by character, which
    cost more than everything else of a delivery."""
    parts = []
    for name, value in fields.items():
        if _BASE64.fullmatch(value):
            escaped = value.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        else:
            escaped = urllib.parse.quote_plus(value)
        parts.append(f"{urllib.parse.quote_plus(name)}={escaped}")
    return "&".join(parts).encode("ascii")


class BhxhClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        username: str,
        password: str,
        variant: str = "3176",
        timeout: float = 30.0,
    ) -> None:
        self.http = http
        self.base = base_url.rstrip("/")
        self.username = username
        self.password_hash = hashlib.md5(password.encode("utf-8")).hexdigest().upper()  # noqa: S324  (the portal's scheme)
        self.variant = variant
        self.timeout = timeout
        self._token: tuple[float, str, str] | None = None  # (expires, access, id)
        # one login at a time: the calls a worker has in flight at once (D254) that find no
        # token, or an expired one, wait for one login instead of each logging in
        self._login = asyncio.Lock()

    async def _post(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """The portal's JSON object for one request. An answer that never came (timeout, lost
        connection, a gateway's 5xx) or came with HTTP 200 but cannot be read may mean the
        portal has the file; a 4xx answer means it surely has not.

        The time limit is kept here around the whole exchange too: httpx's own limits apply
        to each network read, and not at all to an in-process transport (the simulator under
        ``make run``), where a hung portal would otherwise hold the delivery forever."""
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.http.post(
                    f"{self.base}{path}", timeout=self.timeout, **kwargs
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise DeliveryFailed("timeout", maybe_received=True) from exc
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"connection: {type(exc).__name__}", maybe_received=True) from exc
        if response.status_code >= 500:
            raise DeliveryFailed(f"HTTP {response.status_code}", maybe_received=True)
        answered = response.status_code == 200
        try:
            body = response.json()
        except ValueError as exc:  # (UnicodeDecodeError and JSONDecodeError among them)
            raise DeliveryFailed(
                f"HTTP {response.status_code}: not JSON", maybe_received=answered
            ) from exc
        if not isinstance(body, dict):
            raise DeliveryFailed("answer is not a JSON object", maybe_received=answered)
        return body

    async def token(self, *, fresh: bool = False) -> tuple[str, str]:
        """The portal's token (access, id): the one held while it lasts, unless ``fresh`` (the
        portal refused it); a new one otherwise, unless another call took one meanwhile."""
        seen = self._token
        if seen and not fresh and seen[0] > time.monotonic():
            return seen[1], seen[2]
        async with self._login:
            now = self._token
            if now is not None and now is not seen and now[0] > time.monotonic():
                return now[1], now[2]  # taken by another call while this one waited
            return await self._take_token()

    async def _take_token(self) -> tuple[str, str]:
        body = await self._post(
            "/api/token/take", data={"username": self.username, "password": self.password_hash}
        )
        if str(body.get("maKetQua")) != "200" or not body.get("access_token"):
            raise DeliveryFailed(f"token refused: {body.get('maKetQua')}", detail=body)
        raw = body.get("expires_in") or 600
        try:
            lifetime = float(raw)  # (a number, or a number as text)
        except (TypeError, ValueError):
            lifetime = math.nan
        if isinstance(raw, bool) or not math.isfinite(lifetime):
            raise DeliveryFailed(f"token answer: expires_in {raw!r}", detail=body)
        self._token = (
            time.monotonic() + max(lifetime - 60, 30),
            str(body["access_token"]),
            str(body.get("id_token") or ""),
        )
        return self._token[1], self._token[2]

    async def _send(self, path: str, form: dict[str, str]) -> PortalAnswer:
        encoded = form_body({"username": self.username, **form})
        for attempt in (1, 2):
            access, id_token = await self.token(fresh=attempt == 2)
            body = await self._post(
                path,
                content=encoded,
                headers={
                    "accessToken": access,
                    "tokenId": id_token,
                    "passwordHash": self.password_hash,
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            code = str(body.get("maKetQua"))
            if code == "401" and attempt == 1:
                continue  # the token expired early: take a new one once
            if code != "200":
                raise DeliveryFailed(
                    f"portal answered {code}: {body.get('thongDiep')}", detail=body
                )
            if not body.get("maGiaoDich"):  # it said it took the file: it may well have it
                raise DeliveryFailed(
                    f"portal answered 200 without maGiaoDich: {body.get('thongDiep')}",
                    maybe_received=True,
                    detail=body,
                )
            return PortalAnswer(
                str(body["maGiaoDich"]), body.get("thoiGianTiepNhan"), body.get("thongDiep")
            )
        raise DeliveryFailed("token refused twice")

    async def send_file(self, facility_code: str, document: bytes) -> PortalAnswer:
        """A GIAMDINHHS file (guiHoSoXmlQD4750 / guiHoSoXmlQD3176)."""
        return await self._send(
            f"/api/qd130/guiHoSoXmlQD{self.variant}",
            {
                "loaiHoSo": "130",
                "maTinh": facility_code[:2],
                "maCSKCB": facility_code,
                "fileHSBase64": base64.b64encode(document).decode("ascii"),
            },
        )

    async def send_checkin(self, facility_code: str, document: bytes) -> PortalAnswer:
        """An XML0 check-in (checkInKcbQd4750 / checkInKcbQd3176)."""
        return await self._send(
            f"/api/qd130/checkInKcbQd{self.variant}",
            {
                "loaiHoSo": "0",
                "maTinh": facility_code[:2],
                "maCSKCB": facility_code,
                "fileHSBase64": base64.b64encode(document).decode("ascii"),
            },
        )

    async def check_card(self, card: str, full_name: str, birth_date: str) -> str:
        """The portal's card lookup (KQNhanLichSuKCB2024); returns its ``maKetQua``.
        ``birth_date`` is dd/MM/yyyy (or yyyy). The officer fields name the hub. A "401" (the
        portal forgot our token: a restart, an early expiry) takes a fresh token once, as
        file delivery does; refused again, or an answer that cannot be read, is a
        ``DeliveryFailed``: the portal could not answer, which says nothing of the card."""
        for attempt in (1, 2):
            access, id_token = await self.token(fresh=attempt == 2)
            try:
                body = await self._post(
                    "/api/egw/KQNhanLichSuKCB2024",
                    params={
                        "token": access,
                        "id_token": id_token,
                        "username": self.username,
                        "password": self.password_hash,
                    },
                    json={
                        "maThe": card,
                        "hoTen": full_name,
                        "ngaySinh": birth_date,
                        "hoTenCb": "vnehr",
                        "cccdCb": "000000000000",
                    },
                )
            except DeliveryFailed as exc:
                raise DeliveryFailed(f"card lookup: {exc.reason}", detail=exc.detail) from exc
            code = str(body.get("maKetQua") or "")
            if code == "401":
                continue  # the portal forgot our token: a new one, once
            if not code:
                raise DeliveryFailed("card lookup: answer without maKetQua", detail=body)
            return code
        raise DeliveryFailed("card lookup: token refused twice")
