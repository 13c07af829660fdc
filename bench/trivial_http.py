"""The gateway's ceiling: a trivial FastAPI app served by uvicorn the way the gateway is.

Same routes and status codes as the measured gateway calls, no work behind them
(no auth, no Redis, no gRPC). bench/gateway_load.py drives it with the same load
generator, concurrency and phases as the gateway, in the same run:

    .venv/bin/python -m uvicorn trivial_http:app --app-dir bench --port 8999
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI, Response

app = FastAPI()


@app.post("/v1/timer/start", status_code=201)
async def start_timer(body: dict[str, Any]) -> dict[str, Any]:
    return {"entry_id": str(uuid.uuid4()), "project_id": body.get("project_id")}


@app.post("/v1/timer/stop")
async def stop_timer() -> dict[str, Any]:
    return {"entry_id": str(uuid.uuid4()), "discarded": True}


@app.post("/v1/time-entries", status_code=201)
async def create_entry(body: dict[str, Any], response: Response) -> dict[str, Any]:
    response.headers["ETag"] = '"1"'
    return {"entry_id": str(uuid.uuid4()), **body}
