"""Probes for orchestrators, and the Prometheus endpoint.

`/healthz` answers as long as the process serves HTTP (liveness: restarting will not help
otherwise). `/readyz` answers 200 when the model of every served mode is ready on at least one
Triton endpoint (readiness: new sessions go to the healthy endpoints, so one server down does not
make every frontend unready), else 503; the report says which endpoint or model is missing.
"""

from __future__ import annotations

from aiohttp import web

from frontends.app_keys import METRICS_KEY, SERVICES_KEY


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES_KEY]
    models = [services.settings.model_name(mode) for mode in services.modes]
    report = await services.pool.refresh_health(models)
    ready = all(any(entry["models"].get(model) for entry in report.values()) for model in models)
    return web.json_response({"ready": ready, "triton": report}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[METRICS_KEY].exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response
