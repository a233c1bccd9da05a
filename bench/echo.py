"""A trivial endpoint for the intake benchmark's HTTP ceiling: the same server (uvicorn with
httptools and uvloop, a socket per worker, as ``vnehr serve``) receiving the same 42 KB bodies
and answering a receipt-sized JSON, with no checks and no storing."""

from __future__ import annotations

import hashlib
import sys

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def receive(request: Request) -> Response:
    body = await request.body()
    answer = {"id": hashlib.sha256(body).hexdigest()[:32], "status": "accepted", "bytes": len(body)}
    return Response(orjson.dumps(answer), status_code=201, media_type="application/json")


app = Starlette(routes=[Route("/api/v1/submissions", receive, methods=["POST"])])

if __name__ == "__main__":
    from vnehr.kit import serving

    port, workers = int(sys.argv[1]), int(sys.argv[2])
    serving.serve("bench.echo:app", host="127.0.0.1", port=port, workers=workers,
                  log_config=None, access_log=False)  # fmt: skip
