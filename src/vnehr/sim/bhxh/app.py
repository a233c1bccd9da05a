"""HTTP face of the simulated BHXH portal: routes, answers and the fault controls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, fields
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from vnehr.sim.bhxh.config import BhxhConfig, Faults
from vnehr.sim.bhxh.documents import Refused
from vnehr.sim.bhxh.portal import SYSTEM_ERROR, Portal

_NO_STORE = {"Cache-Control": "no-store"}


class FaultsBody(BaseModel):
    """The injected faults as JSON; ``PUT`` replaces all of them (absent fields reset)."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(default=0.0, ge=0, le=1)
    latency_seconds: float = Field(default=0.0, ge=0, le=120)
    timeout_rate: float = Field(default=0.0, ge=0, le=1)
    hang_seconds: float = Field(default=30.0, ge=0, le=600)
    drop_rate: float = Field(default=0.0, ge=0, le=1)
    duplicate_answer_rate: float = Field(default=0.0, ge=0, le=1)
    unavailable: bool = False
    seed: int | None = None


class _Unavailable(Exception):
    pass


def _answer(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, headers=_NO_STORE)


def create_app(config: BhxhConfig) -> FastAPI:
    """A standalone ASGI app of the simulated portal; mount it anywhere (paths are relative).

    Files, check-ins and tokens are kept in memory for the life of the app. ``config.faults``
    is read on every request, so changing it (or ``PUT /_sim/faults``) takes effect at once.
    """
    portal = Portal(config)

    async def gateway() -> None:
        faults = config.faults
        if faults.unavailable:
            raise _Unavailable
        if faults.latency_seconds > 0:
            await asyncio.sleep(faults.latency_seconds)

    api = APIRouter(dependencies=[Depends(gateway)], tags=["BHXH (simulator)"])
    sim = APIRouter(prefix="/_sim", tags=["simulator controls"])

    async def form_of(request: Request) -> dict[str, str]:
        form = await request.form()
        return {k: v for k, v in form.multi_items() if isinstance(v, str)}

    @api.post("/api/token/take")
    async def take_token(request: Request) -> JSONResponse:
        """Form ``username`` and ``password`` (MD5, uppercase hex) → a token for 30 minutes.

        Wrong credentials are ``{"maKetQua": "401", "thongDiep": ...}`` with HTTP 200.
        """
        form = await form_of(request)
        return _answer(portal.take_token(form.get("username"), form.get("password")))

    async def submission(
        request: Request, receive: Callable[[dict[str, str], bool], dict[str, Any]]
    ) -> Response:
        """One file or check-in, through the injected faults."""
        form = await form_of(request)
        draw = portal.draw()
        if draw.error:
            return _answer(dict(SYSTEM_ERROR))
        try:
            body = receive(form, draw.duplicate)
        except Refused as exc:
            body = {"maKetQua": exc.code, "thongDiep": exc.message}
        if draw.timeout:
            await asyncio.sleep(config.faults.hang_seconds)
        if draw.drop:
            return Response("502 Bad Gateway", status_code=502, media_type="text/plain")
        return _answer(body)

    def file_route(variant: str) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            headers = dict(request.headers)
            return await submission(
                request,
                lambda form, twice: portal.receive_file(form, headers, variant, record_twice=twice),
            )

        route.__doc__ = (
            f"A GIAMDINHHS file (QĐ {variant}). Headers ``accessToken``, ``tokenId``, "
            "``passwordHash``; form ``username``, ``loaiHoSo=130``, ``maTinh``, ``maCSKCB``, "
            "``fileHSBase64``. Answers ``maKetQua``, ``maGiaoDich``, ``thoiGianTiepNhan``, "
            "``thongDiep``."
        )
        return route

    def checkin_route(variant: str) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            headers = dict(request.headers)
            return await submission(
                request,
                lambda form, twice: portal.receive_checkin(
                    form, headers, variant, record_twice=twice
                ),
            )

        route.__doc__ = (
            f"An XML0 check-in (QĐ {variant}): same headers, form ``loaiHoSo=0`` and "
            "``fileHSBase64`` of a CHI_TIEU_TRANG_THAI_KCB document."
        )
        return route

    for variant in ("4750", "3176"):
        api.add_api_route(
            f"/api/qd130/guiHoSoXmlQD{variant}",
            file_route(variant),
            methods=["POST"],
            name=f"file_{variant}",
        )
        api.add_api_route(
            f"/api/qd130/checkInKcbQd{variant}",
            checkin_route(variant),
            methods=["POST"],
            name=f"checkin_{variant}",
        )

    @api.post("/api/egw/KQNhanLichSuKCB2024")
    async def card_lookup(request: Request) -> JSONResponse:
        """Card check and visit history. Query ``token``, ``id_token``, ``username``,
        ``password`` (MD5); JSON ``maThe``, ``hoTen``, ``ngaySinh`` (dd/MM/yyyy),
        ``hoTenCb``, ``cccdCb``."""
        try:
            body: Any = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            body = None
        return _answer(portal.lookup(dict(request.query_params), body))

    # ------------------------------------------------------------------ controls

    @sim.get("/faults")
    async def get_faults() -> FaultsBody:
        """The faults injected now."""
        return FaultsBody(**asdict(config.faults))

    @sim.put("/faults")
    async def put_faults(body: FaultsBody) -> FaultsBody:
        """Replace every injected fault (fields left out go back to their default).
        The random generator is re-seeded with ``seed``."""
        for item in fields(Faults):
            setattr(config.faults, item.name, getattr(body, item.name))
        portal.reseed()
        return FaultsBody(**asdict(config.faults))

    @sim.get("/received")
    async def received() -> list[dict[str, Any]]:
        """Every HOSO kept, in arrival order (duplicates included)."""
        return [r.public() for r in portal.records]

    @sim.get("/received/{facility}/{ma_lk}")
    async def received_one(facility: str, ma_lk: str) -> list[dict[str, Any]]:
        """The versions of one visit, oldest first (empty when none was received)."""
        return [r.public() for r in portal.history(facility, ma_lk)]

    @sim.delete("/received", status_code=204)
    async def reset() -> Response:
        """Forget every received file and check-in (tokens stay valid)."""
        portal.reset()
        return Response(status_code=204)

    @sim.get("/checkins")
    async def checkins() -> list[dict[str, Any]]:
        """Every check-in kept, in arrival order."""
        return [c.public() for c in portal.checkins]

    app = FastAPI(
        title="BHXH portal simulator (QĐ 130/4750/3176)",
        description="Mô phỏng cổng tiếp nhận dữ liệu giám định BHYT cho phát triển và kiểm thử.",
        version="1",
    )

    @app.exception_handler(_Unavailable)
    async def unavailable(request: Request, exc: _Unavailable) -> Response:
        return JSONResponse(
            {"maKetQua": "503", "thongDiep": "Hệ thống đang bảo trì, vui lòng thử lại sau"},
            status_code=503,
            headers={**_NO_STORE, "Retry-After": "30"},
        )

    app.include_router(api)
    app.include_router(sim)
    app.state.portal = portal
    return app
