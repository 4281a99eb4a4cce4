"""The scoring service: FastAPI over the live models.

    app = create_app(settings)              # what `cerebro serve` runs under uvicorn
    uvicorn.run(app, host=..., port=...)

Endpoints (docs/serving.md): POST /v1/score, /v1/forecast, /v1/failure; GET /models, /healthz, /readyz,
/metrics; POST /admin/reload. ``/admin/*`` always wants ``Authorization: Bearer <token>`` (``serving.auth``:
the configured token, else one generated in the home folder); the other endpoints but the probes want it when
``serving.token`` is set or the service listens beyond loopback. A client's mistake is a 4xx that never counts
towards a model's rollback; ``serving.limits`` bounds bodies, their upload time and the requests in flight.
"""
from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import time
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving import schemas as S
from serving.auth import configured, loopback_only, service_token
from serving.coalesce import Coalescer
from serving.limits import RequestLimits
from serving.metrics import ServingMetrics
from serving.rollback import Outcome
from serving.router import CHALLENGER, CHAMPION, Router, routing_key
from serving.scoring import client_error
from serving.screening import Limits, RequestProblem, screen, screen_names, unknown_services_note
from training import kinds

log = logging.getLogger("cerebro.serving")
shadow_log = logging.getLogger("cerebro.serving.shadow")

_ERRORS = {401: {"description": "missing or wrong bearer token"},
           404: {"description": "the endpoint is switched off by a feature flag"},
           408: {"description": "the body arrived too slowly (serving.body_timeout_seconds)"},
           413: {"description": "the body is larger than serving.max_body_mb"},
           422: {"description": "the body is not what the endpoint expects, or not what the model can take (a "
                 "window too short for it, a timestamp or value out of range); `detail` names the field and why"},
           503: {"description": "no model of this kind is live, or too many requests in flight (Retry-After)"}}


def _printable(value, limit: int = 100) -> str:
    """``value`` as text JSON can always carry: a lone surrogate becomes its escape, and long text is cut."""
    return str(value)[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


def _echo(got):
    """What a client sent, as a JSON value: NaN and infinities (which JSON cannot hold) become their names."""
    if isinstance(got, float) and not np.isfinite(got):
        return "NaN" if np.isnan(got) else ("Infinity" if got > 0 else "-Infinity")
    if isinstance(got, (bool, int, float)) or got is None:
        return got
    if isinstance(got, bytes):
        got = got.decode("utf-8", "replace")
    return _printable(got)


def _field(loc: tuple) -> str:
    """('body', 'telemetry', 3, 'value') -> 'telemetry[3].value'."""
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return _printable(out, 300) or "body"


def _problems(exc: RequestValidationError) -> tuple[int, dict]:
    problems = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            reason = _printable(err.get("ctx", {}).get("error", "invalid JSON"), 300)
            return 400, {"detail": f"the body is not valid JSON: {reason} (at character {err['loc'][-1]})"}
        if tuple(err["loc"]) == ("body",) and isinstance(err.get("input"), (str, bytes)):
            return 400, {"detail": "the body must be a JSON object (with Content-Type: application/json)"}
        item = {"field": _field(tuple(err["loc"])),
                "problem": _printable(err["msg"].removeprefix("Value error, "), 500)}
        if err.get("type") == "missing":
            item["problem"] = "required field is missing"
        elif "input" in err and not isinstance(err["input"], (dict, list)):
            item["got"] = _echo(err["input"])
        problems.append(item)
    summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
    return 422, {"detail": problems, "message": f"invalid request: {summary}"}


class _FastJsonRequest(Request):
    """Request bodies read with orjson (a third of the standard library's time on a 540-point window); what
    orjson refuses goes to ``json.loads``, so the service accepts what it always did (NaN, huge integers) and
    reports a broken body with the same error. A lone UTF-16 surrogate (``"\\ud800"``), which orjson refuses
    and ``json.loads`` lets through, is not text: the body is refused as invalid JSON (a 400) rather than
    failing wherever the string is later encoded."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            import orjson

            body = await self.body()
            try:
                self._json = orjson.loads(body)
            except orjson.JSONDecodeError:
                self._json = json.loads(body)
                _refuse_surrogates(self._json, body)
        return self._json


_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _refuse_surrogates(parsed, body: bytes) -> None:
    try:
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        at = _SURROGATE.search(body)
        raise json.JSONDecodeError("a lone UTF-16 surrogate (\\ud800-\\udfff without its pair) is not text",
                                   "", at.start() if at else 0) from None


class _FastJsonRoute(APIRoute):
    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request):
            return await handler(_FastJsonRequest(request.scope, request.receive))
        return route


class _HttpMetrics:
    """Request counts and latency per endpoint, as a plain ASGI wrapper (cheaper than BaseHTTPMiddleware)."""

    def __init__(self, app, metrics: ServingMetrics, paths: set[str]):
        self.app, self.metrics, self.paths = app, metrics, paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"] if scope["path"] in self.paths else "other"
        status = {"code": 500}

        async def send_status(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.requests.labels(path, str(status["code"])).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - t0)


class _WorkerHeader:
    """``X-Cerebro-Worker: <pid>`` on every answer of a replica (``cerebro serve --workers N``): which process
    answered, since /models and /metrics are per process."""

    def __init__(self, app):
        import os

        from serving.replicas import WORKER_HEADER

        self.app, self.header = app, (WORKER_HEADER.encode(), str(os.getpid()).encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_pid(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_with_pid)


def limit_torch_threads(threads: int) -> int | None:
    """Set torch's intra-op threads for this process (``serving.torch_threads``; 0 leaves torch's default).

    A request's window is a few dozen rows: split over threads, the synchronisation costs more than the
    work. Measured on the pipeline's champion (three torch members) on 2 cores: 35.7 ms per window with
    torch's default of 2 threads, 20.1 ms with 1. Returns the count set, or None without torch or with 0."""
    if threads <= 0:
        return None
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return None
    torch.set_num_threads(threads)
    return torch.get_num_threads()


def limit_blas_threads(threads: int) -> int | None:
    """Set the BLAS libraries' threads (numpy's and scipy's OpenBLAS, MKL where loaded) for this process
    (``serving.blas_threads``; 0 leaves their default). A window's matrices are small, and BLAS threads that
    wait spinning fight scikit-learn's and torch's OpenMP threads for the same cores: with the pipeline's
    ensemble (LOF, VAE, PCA) served on 2 cores, 8 concurrent windows took 50-52 ms a cycle at p50 with BLAS on
    2 threads, 26-28 ms with 1 (PCA's projection alone 7.5 ms -> 0.9 ms). Returns the count set, or None."""
    if threads <= 0:
        return None
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")  # process-wide, for good (not used as a context here)
    return threads


def settle_heap() -> float:
    """Collect, then move every object the process holds (the loaded models, torch, scikit-learn, pandas,
    MLflow: a few million) out of the garbage collector's reach (``gc.freeze``); returns the seconds it took.
    Otherwise a full collection walks them all every few seconds under load and stalls every request in
    flight: with the pipeline's champion at 8 clients, about 250 ms once every 3 s, which set the p99 (270-360
    ms against 55-70 ms). Called after each model switch; unfreezing first lets a replaced version's cycles
    be collected once it is dropped."""
    import gc

    t0 = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - t0


def create_app(settings, live=None, load_in_background: bool = True, alert=None,
               worker_header: bool = False) -> FastAPI:
    """The service over ``settings.serving``. ``live``: a ready :class:`serving.live.LiveModels` (tests);
    otherwise one is made at start-up and loads the models (in the background: /healthz answers at once).
    ``alert(event, **details)``: told of automatic rollbacks (``cerebro serve`` passes the ML team's webhook).
    ``worker_header``: every answer names this process (``X-Cerebro-Worker``), for replicas
    (``serving/replicas.py``)."""
    from serving.live import LiveModels

    cfg = settings.serving
    metrics = ServingMetrics() if live is None else live.metrics
    limits = Limits.from_settings(cfg)
    router = Router.from_settings(cfg) if live is None else live.router

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        models = live or LiveModels(settings, router, metrics)
        app.state.live = models
        if alert is not None:
            models.alert = alert
        if live is None:
            models.after_change = settle_heap  # this process is the service: tests keep their collector as is

            def first_load() -> None:
                try:
                    models.reload()
                finally:
                    models.start_polling()

            if load_in_background:
                threading.Thread(target=first_load, name="cerebro-first-load", daemon=True).start()
            else:
                first_load()
        else:
            models.start_polling()
        yield
        models.stop()

    app = FastAPI(title="CEREBRO scoring service", version="1.0",
                  description="Anomaly scores, forecasts and failure risk from the models live in MLflow's "
                  "registry (aliases champion / challenger). See docs/serving.md.", lifespan=lifespan)
    app.router.route_class = _FastJsonRoute  # before the routes below are declared
    bearer = HTTPBearer(auto_error=False, description="always on /admin/*; on the other endpoints when "
                        "serving.token is set or the service listens beyond loopback")
    token, token_file = service_token(settings)
    app.state.token_file = token_file  # None: the configured token
    expected = token.encode()
    # The scoring and reading endpoints are open only on loopback with no token configured.
    everywhere = bool(configured(cfg)) or not loopback_only(cfg.host)
    if token_file is not None:
        log.info("the scoring service's token is in %s (owner-only); /admin/* wants it%s", token_file,
                 "" if not everywhere else f", and so does every endpoint but the probes (host {cfg.host})")

    def _check(creds: HTTPAuthorizationCredentials | None) -> None:
        if creds is None or not hmac.compare_digest(creds.credentials.encode("utf-8", "surrogateescape"), expected):
            where = f"the content of {token_file}" if token_file else "serving.token"
            raise HTTPException(401, f"missing or wrong bearer token: send `Authorization: Bearer <token>` "
                                f"with {where}", headers={"WWW-Authenticate": "Bearer"})

    # async: FastAPI runs a plain ``def`` dependency on its thread pool, a thread hop per request.
    async def authorised(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if everywhere:
            _check(creds)

    async def admin(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        _check(creds)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        status, body = _problems(exc)
        return JSONResponse(body, status_code=status)

    @app.exception_handler(RequestProblem)
    async def refused(request: Request, exc: RequestProblem):
        item = {"field": _printable(exc.field, 300), "problem": _printable(exc.problem, 500)}
        if exc.got is not None:
            item["got"] = _echo(exc.got)
        return JSONResponse({"detail": [item], "message": f"invalid request: {item['field']}: {item['problem']}"},
                            status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        # FastAPI's own handler, but the detail always encodable (a model's message may echo a client's text)
        detail = _printable(exc.detail, 2000) if isinstance(exc.detail, str) else exc.detail
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    def model_for(endpoint: str, key: str):
        kind = kinds.by_endpoint(endpoint).name
        if not router.enabled(endpoint):
            raise HTTPException(404, f"/{endpoint} is switched off (serving.flags.{endpoint})")
        variant = router.variant(kind, key)
        model = app.state.live.get(kind, variant)
        if model is None and variant == CHALLENGER:  # no challenger live: the champion answers
            model = app.state.live.get(kind, CHAMPION)
        if model is None:
            raise HTTPException(503, f"no {kind} is live yet (serving.models.{kind} = "
                                f"{cfg.models.get(kind)!r}); see GET /models")
        return model

    def failed(model, exc: Exception, seconds: float) -> HTTPException:
        metrics.predictions.labels(model.kind, model.variant, model.name, model.version, "error").inc()
        app.state.live.record(model, Outcome(False, seconds))
        log.error("%s v%s failed", model.name, model.version, exc_info=exc)
        return HTTPException(500, f"{model.name} v{model.version} failed: {type(exc).__name__}: {exc}")

    def answered(model, out, seconds: float) -> None:
        labels = (model.kind, model.variant)
        flagged = model.runner.flagged(out)
        metrics.predictions.labels(*labels, model.name, model.version, "ok").inc()
        metrics.model_latency.labels(*labels).observe(seconds)
        metrics.rows.labels(*labels).inc(len(out))
        metrics.flagged.labels(*labels).inc(flagged)
        app.state.live.record(model, Outcome(True, seconds, len(out), flagged))

    def unanswerable(model, exc: Exception) -> HTTPException:
        """A 422 for an input the model cannot take; it is the client's to fix and never counts."""
        return HTTPException(422, f"{model.name} v{model.version} cannot take this request: {exc}")

    def call(model, fn) -> Any:
        """Run ``fn(runner)``, timing it and counting it for the model's metrics and rollback window; an input
        the model cannot take (``scoring.client_error``) is a 422 and not counted."""
        t0 = time.perf_counter()
        try:
            out = fn(model.runner)
        except Exception as exc:  # noqa: BLE001 - any model failure is a 500 that names it, and counts
            if client_error(exc):
                raise unanswerable(model, exc) from None
            raise failed(model, exc, time.perf_counter() - t0) from None
        answered(model, out, time.perf_counter() - t0)
        return out

    def score_batch(_key, items: list) -> list:
        """The windows of several /v1/score requests for one model in one call (``serving.max_batch``). Each
        request is counted with its share of the batch's time, the model's cost per request, which is what the
        rollback's latency limit judges: the whole batch's time grows with the load and would read a busy
        service as a slow model."""
        model = items[0][0]
        metrics.batch_size.labels(model.kind, model.variant).observe(len(items))
        t0 = time.perf_counter()
        try:
            results = model.runner.score_windows([req for _, req in items])
        except Exception as exc:  # noqa: BLE001 - every request of the batch fails with the reason
            if client_error(exc) and len(items) > 1:  # one request the model cannot take: the others alone
                return [_outcome(lambda req=req: call(model, lambda r: _scored(r.score_window(req))))
                        for _, req in items]
            if client_error(exc):
                return [unanswerable(model, exc)]
            share = (time.perf_counter() - t0) / len(items)
            return [failed(model, exc, share) for _ in items]
        share = (time.perf_counter() - t0) / len(items)
        out: list = []
        for result in results:
            if isinstance(result, Exception):
                out.append(unanswerable(model, result))
                continue
            rows = _scored(result)
            answered(model, rows, share)
            out.append(rows)
        return out

    coalescer = Coalescer(score_batch, cfg.max_batch)
    app.state.coalescer = coalescer

    def shadow(endpoint: str, key: str, fn, answered) -> None:
        """The challenger answers the same request; what it said is logged and counted, never returned."""
        kind = kinds.by_endpoint(endpoint).name
        challenger = app.state.live.get(kind, CHALLENGER)
        if challenger is None:
            return
        try:
            out = call(challenger, fn)
        except HTTPException as exc:
            metrics.shadow.labels(kind, "error").inc()
            shadow_log.info(json.dumps({"kind": kind, "key": key, "challenger": challenger.version,
                                        "error": exc.detail}))
            return
        record = {"kind": kind, "key": key, "champion": answered.version, "challenger": challenger.version,
                  **kinds.by_name(kind).code.shadow_gap(answered.result, out)}
        metrics.shadow.labels(kind, "agree" if record["agree"] else "disagree").inc()
        shadow_log.info(json.dumps(record, default=str))

    def services_of(req) -> list[str]:
        return [p.service for p in req.telemetry] + [s.service for s in req.series]

    @app.get("/healthz", tags=["probes"], summary="Liveness: the process answers")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["probes"], summary="Readiness: a model is loaded and warmed up",
             responses={503: {"description": "no model is live yet"}})
    def readyz():
        models = {f"{m['kind']}/{m['variant']}": m["version"] for m in app.state.live.describe()["live"]}
        ready = app.state.live.ready()
        return JSONResponse({"ready": ready, "live": models}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["probes"], summary="Prometheus metrics", dependencies=[Depends(authorised)])
    def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/models", response_model=S.ModelsResponse, tags=["models"], dependencies=[Depends(authorised)],
             summary="What is live: model, version, alias, since when; refusals and recent switches")
    def models() -> dict:
        return app.state.live.describe()

    @app.post("/admin/reload", tags=["models"], dependencies=[Depends(admin)],
              summary="Check the aliases now (the poller does it every serving.poll_seconds); always wants the "
              "token")
    def reload(retry_refused: bool = False) -> dict:
        return {"changes": app.state.live.reload(retry_refused=retry_refused)}

    @app.post("/v1/score", response_model=S.ScoreResponse, tags=["scoring"], responses=_ERRORS,
              dependencies=[Depends(authorised)],
              summary="Anomaly scores for a window of raw telemetry (one or many series)")
    async def score(req: S.ScoreRequest, background: BackgroundTasks):
        # Inline on the event loop: the work is CPU-bound under one GIL, so a thread hop only adds latency.
        # Requests that arrive while the loop is busy are scored together where the model allows it
        # (``serving.coalesce``).
        notes = screen(req, limits)  # before any model: what it cannot take is refused, never counted
        key = routing_key(req.key, services_of(req))
        model = model_for("score", key)
        known = getattr(model.runner, "known_services", lambda: None)()
        notes += unknown_services_note(set(services_of(req)), known)

        def fn(runner):
            out, missing = runner.score_window(req)
            out.attrs["missing"] = missing
            return out

        if app.state.live.batches(model):
            out = await coalescer.submit(id(model), (model, req))
        else:
            out = call(model, fn)
        if router.shadows(model.kind, model.variant):
            background.add_task(shadow, "score", key, fn, _Answer(model.version, out))
        return _json({"model": model.name, "version": model.version, "variant": model.variant,
                      "rows": _records(out), "anomalies": int(np.asarray(out["is_anomaly"]).sum()),
                      "missing_metrics": out.attrs.get("missing", []), "notes": notes})

    @app.post("/v1/forecast", response_model=S.ForecastResponse, tags=["scoring"], responses=_ERRORS,
              dependencies=[Depends(authorised)], summary="Forecast series a given number of steps ahead")
    def forecast(req: S.ForecastRequest, background: BackgroundTasks):
        notes = screen_names(req.series, "series")
        key = routing_key(req.key, req.series)
        model = model_for("forecast", key)

        def fn(runner):
            return runner.forecast(list(req.series), req.horizon)

        out = call(model, fn)
        if router.shadows(model.kind, model.variant):
            background.add_task(shadow, "forecast", key, fn, _Answer(model.version, out))
        steps = json.loads(out.to_json(orient="records"))  # NaN -> null
        return JSONResponse({"model": model.name, "version": model.version, "variant": model.variant,
                             "steps": steps, "notes": notes})

    @app.post("/v1/failure", response_model=S.FailureResponse, tags=["scoring"], responses=_ERRORS,
              dependencies=[Depends(authorised)],
              summary="Failure risk and its top factors, from a telemetry window or from features")
    def failure(req: S.FailureRequest, background: BackgroundTasks):
        notes = screen(req, limits)
        key = routing_key(req.key, [r.service for r in req.rows] + services_of(req))
        model = model_for("failure", key)
        window = settings.feast.window_minutes

        def fn(runner):
            return runner.from_rows(req.rows, req.top_k) if req.rows else runner.from_window(req, window)

        out = call(model, fn)
        if router.shadows(model.kind, model.variant):
            background.add_task(shadow, "failure", key, fn, _Answer(model.version, out))
        rows = json.loads(out.to_json(orient="records"))
        for row in rows:
            row["top_factors"] = json.loads(row["top_factors"]) if row.get("top_factors") else []
        return JSONResponse({"model": model.name, "version": model.version, "variant": model.variant, "rows": rows,
                             "notes": notes})

    app.add_middleware(RequestLimits, max_body_bytes=int(cfg.max_body_mb * 1e6), max_concurrent=cfg.max_concurrent,
                       body_timeout=cfg.body_timeout_seconds, unlimited_paths=frozenset({"/healthz", "/readyz"}))
    app.add_middleware(_HttpMetrics, metrics=metrics, paths={r.path for r in app.routes})
    if worker_header:
        app.add_middleware(_WorkerHeader)
    return app


def _records(frame) -> list[dict]:
    """``frame.to_dict("records")`` (a DataFrame or ``scoring.Rows``) from its columns as Python lists: several
    times faster for small frames."""
    names = [str(c) for c in frame.columns]
    return [dict(zip(names, row)) for row in zip(*(frame[c].tolist() for c in frame.columns))]


def _json(body: dict, status_code: int = 200) -> Response:
    """JSON through orjson: faster than the standard library, and NaN or infinity become null (valid JSON)."""
    import orjson

    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status_code,
                    media_type="application/json")


def _scored(result):
    """``score_window``'s (rows, missing metrics) as one answer, as the endpoint reads it."""
    rows, missing = result
    rows.attrs["missing"] = missing
    return rows


def _outcome(fn):
    """``fn()``, or the HTTPException it raised (a batch hands each request its own)."""
    try:
        return fn()
    except HTTPException as exc:
        return exc


class _Answer:
    def __init__(self, version: str, result):
        self.version, self.result = version, result
