"""Client of the BHXH health-insurance appraisal portal (§1.2 of the domain brief): token,
visit files, check-ins. Speaks the portal's shapes; the base URL, account and table variant
are settings. Every failure is a ``DeliveryFailed`` that says whether the portal may have
received the file (an answer that never came) or surely did not."""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import httpx


class DeliveryFailed(Exception):
    def __init__(self, reason: str, *, maybe_received: bool = False, detail: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.maybe_received = maybe_received
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PortalAnswer:
    ma_giao_dich: str
    received_at: str | None
    message: str | None


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

    async def _post(self, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self.http.post(f"{self.base}{path}", timeout=self.timeout, **kwargs)
        except httpx.TimeoutException as exc:
            raise DeliveryFailed("timeout", maybe_received=True) from exc
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"connection: {type(exc).__name__}", maybe_received=True) from exc
        if response.status_code >= 500:
            raise DeliveryFailed(f"HTTP {response.status_code}", maybe_received=True)
        try:
            body = response.json()
        except ValueError as exc:
            raise DeliveryFailed(f"HTTP {response.status_code}: not JSON") from exc
        if not isinstance(body, dict):
            raise DeliveryFailed("answer is not a JSON object")
        return body

    async def token(self, *, fresh: bool = False) -> tuple[str, str]:
        if self._token and not fresh and self._token[0] > time.monotonic():
            return self._token[1], self._token[2]
        body = await self._post(
            "/api/token/take", data={"username": self.username, "password": self.password_hash}
        )
        if str(body.get("maKetQua")) != "200" or not body.get("access_token"):
            raise DeliveryFailed(f"token refused: {body.get('maKetQua')}", detail=body)
        lifetime = float(body.get("expires_in") or 600)
        self._token = (
            time.monotonic() + max(lifetime - 60, 30),
            str(body["access_token"]),
            str(body.get("id_token") or ""),
        )
        return self._token[1], self._token[2]

    async def _send(self, path: str, form: dict[str, str]) -> PortalAnswer:
        for attempt in (1, 2):
            access, id_token = await self.token(fresh=attempt == 2)
            body = await self._post(
                path,
                data={"username": self.username, **form},
                headers={
                    "accessToken": access,
                    "tokenId": id_token,
                    "passwordHash": self.password_hash,
                },
            )
            code = str(body.get("maKetQua"))
            if code == "401" and attempt == 1:
                continue  # the token expired early: take a new one once
            if code != "200" or not body.get("maGiaoDich"):
                raise DeliveryFailed(
                    f"portal answered {code}: {body.get('thongDiep')}", detail=body
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
        ``birth_date`` is dd/MM/yyyy (or yyyy). The officer fields name the hub."""
        access, id_token = await self.token()
        try:
            response = await self.http.post(
                f"{self.base}/api/egw/KQNhanLichSuKCB2024",
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
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"card lookup: {type(exc).__name__}", maybe_received=True) from exc
        if response.status_code != 200:
            raise DeliveryFailed(f"card lookup: HTTP {response.status_code}")
        return str(response.json().get("maKetQua", ""))
