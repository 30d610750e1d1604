"""The simulated lab's HTTP service (FastAPI): versioned JSON API, bearer-token auth, idempotent submission.

Routes (all under a bearer token except ``/healthz``):

- ``POST /v1/experiments`` with an ``Idempotency-Key`` header: 201 and a new
  experiment, or 200 and the experiment already accepted under that key (never run
  twice); 422 when the key was used for a different request.
- ``GET /v1/experiments/{id}``, ``POST /v1/experiments/{id}/cancel``
- ``GET /v1/experiments?status=&since=&ids=&cursor=&limit=`` (paged by cursor)
- ``GET /v1/instruments``, ``GET /v1/scenarios``, ``GET /v1/stats``, ``GET /healthz``

Every bad request gets a 4xx with a JSON ``detail`` (see ``limits.py``): a missing,
non-ASCII or malformed ``Authorization`` header 401 (a well-formed wrong token 403), a
query parameter that is out of range or not a number 400, a body over
``LabConfig.max_body_bytes`` 413; a listing is bounded by ``limit`` and by size.

Fault injection (``error_rate``, ``slow_rate``) hits the ``/v1/experiments`` routes,
the ones a client must survive; half of the injected 5xx answers are sent after the
work was done, so a client that retries without its idempotency key would create
duplicates and a test would see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lab_adapters.simlab.api import (
    LAB_STATUSES,
    ExperimentCreate,
    ExperimentOut,
    ExperimentPage,
    Health,
    InstrumentOut,
    ScenarioOut,
    StatsOut,
)
from lab_adapters.simlab.faults import HttpFaults
from lab_adapters.simlab.lab import Lab, LabConfig, LabRequestError
from lab_adapters.simlab.limits import (
    MAX_PAGE_BYTES,
    BodySizeLimit,
    bearer_credentials,
    parse_cursor,
    parse_ids,
    token_matches,
)
from lab_adapters.simlab.scenarios import get_scenario

log = logging.getLogger(__name__)

#: How often the background ticker completes due experiments (real seconds).
TICK_SECONDS = 0.05

_bearer = HTTPBearer(auto_error=False, description="the lab's token (--token / MATLOOP_SIMLAB_TOKEN)")


def _ticker(lab: Lab, stop: threading.Event) -> None:
    """Complete experiments whose time has come even when no client is asking (results land on time)."""
    while not stop.wait(TICK_SECONDS):
        try:
            lab.advance()
        except Exception:  # a transient SQLite error must not stop the clock; say so and go on
            log.exception("simlab ticker: advancing experiments failed; retrying at the next tick")


def _timestamp(when: datetime) -> float:
    """Unix seconds; a time without an offset is UTC (not the server's zone, whose year 1 is out of range)."""
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()


def create_app(config: LabConfig | None = None, lab: Lab | None = None) -> FastAPI:
    """A FastAPI app serving one lab (built from ``config`` unless ``lab`` is given)."""
    lab = lab or Lab(config or LabConfig())
    token = lab.config.token
    faults = HttpFaults(lab.config.seed, lab.config.error_rate, lab.config.slow_rate, lab.config.slow_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = threading.Thread(target=_ticker, args=(lab, stop), name="simlab-ticker", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    app = FastAPI(
        title="matloop simulated lab",
        version="1",
        description="A simulated autonomous lab: instruments, queue, noise and faults over real ground truths.",
        lifespan=lifespan,
    )
    app.state.lab = lab
    app.state.faults = faults

    def authorize(
        request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> None:
        # HTTPBearer above only documents the scheme in the OpenAPI schema; the raw header is
        # checked here, so that a non-ASCII or malformed token is a 401 and never a 500.
        credentials = bearer_credentials(request.headers.get("authorization"))
        if token is not None and not token_matches(credentials, token):
            raise HTTPException(403, "the bearer token is not valid for this lab")

    @app.middleware("http")
    async def inject_faults(request: Request, call_next):  # type: ignore[no-untyped-def]
        if not request.url.path.startswith("/v1/experiments") or (faults.error_rate <= 0 and faults.slow_rate <= 0):
            return await call_next(request)
        when, code, delay = faults.draw()
        if delay:
            await asyncio.sleep(delay)
        if when == "before":
            return JSONResponse({"detail": f"injected fault: {code} before processing"}, status_code=code)
        response = await call_next(request)
        if when == "after":
            return JSONResponse({"detail": f"injected fault: {code} after processing"}, status_code=code)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # A bad query parameter or header is a bad request (400); a body that does not fit the
        # schema stays FastAPI's 422, which clients of this API already expect.
        if all(error.get("loc", ("body",))[0] in ("query", "header", "path") for error in exc.errors()):
            return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=400)
        return await request_validation_exception_handler(request, exc)

    @app.exception_handler(LabRequestError)
    async def refused(request: Request, exc: LabRequestError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)

    # Outermost, so an oversized body is refused before auth, fault injection or parsing see it.
    app.add_middleware(BodySizeLimit, max_bytes=lab.config.max_body_bytes)

    auth = [Depends(authorize)]

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        return Health()

    @app.post("/v1/experiments", response_model=ExperimentOut, status_code=201, dependencies=auth)
    def submit(
        body: ExperimentCreate,
        response: Response,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> ExperimentOut:
        if not idempotency_key:
            raise HTTPException(400, "the Idempotency-Key header is required on POST /v1/experiments")
        row, created = lab.submit(idempotency_key, body.model_dump(mode="json"))
        if not created:
            response.status_code = 200
        return ExperimentOut.from_row(row)

    @app.get("/v1/experiments", response_model=ExperimentPage, dependencies=auth)
    def list_experiments(
        status: str | None = None,
        since: Annotated[datetime | None, Query(description="submitted at or after (ISO 8601)")] = None,
        ids: Annotated[str | None, Query(description="comma-separated experiment ids")] = None,
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> ExperimentPage:
        if status is not None and status not in LAB_STATUSES:
            raise HTTPException(422, f"status={status!r} is not one of {list(LAB_STATUSES)}")
        after = parse_cursor(cursor)
        id_list = parse_ids(ids)
        lab.advance()
        rows, more = lab.store.bounded_page(
            status=status,
            since=_timestamp(since) if since else None,
            ids=id_list,
            after_seq=after,
            limit=limit,
            max_bytes=MAX_PAGE_BYTES,
        )
        return ExperimentPage(
            items=[ExperimentOut.from_row(r) for r in rows], next_cursor=str(rows[-1].seq) if more else None
        )

    @app.get("/v1/experiments/{experiment_id}", response_model=ExperimentOut, dependencies=auth)
    def get_experiment(experiment_id: str) -> ExperimentOut:
        row = lab.get(experiment_id)
        if row is None:
            raise HTTPException(404, f"no experiment {experiment_id!r} in this lab")
        return ExperimentOut.from_row(row)

    @app.post("/v1/experiments/{experiment_id}/cancel", response_model=ExperimentOut, dependencies=auth)
    def cancel_experiment(experiment_id: str) -> ExperimentOut:
        row = lab.cancel(experiment_id)
        if row is None:
            raise HTTPException(404, f"no experiment {experiment_id!r} in this lab")
        return ExperimentOut.from_row(row)

    @app.get("/v1/instruments", response_model=list[InstrumentOut], dependencies=auth)
    def instruments() -> list[InstrumentOut]:
        return [InstrumentOut(**i) for i in lab.instruments()]

    @app.get("/v1/scenarios", response_model=list[ScenarioOut], dependencies=auth)
    def scenarios() -> list[ScenarioOut]:
        out = []
        for name in lab.scenario_names:
            try:
                s = get_scenario(name)
            except Exception as exc:  # absent data: listed, with the reason
                out.append(
                    ScenarioOut(
                        name=name,
                        description="",
                        properties={},
                        steps=[],
                        info={},
                        available=False,
                        unavailable_reason=str(exc),
                    )
                )
                continue
            out.append(
                ScenarioOut(
                    name=s.name,
                    description=s.description,
                    properties={
                        p: {"units": spec.units, "description": spec.description} for p, spec in s.properties.items()
                    },
                    steps=[{"name": st.name, "instrument": st.instrument, "hours": st.hours} for st in s.steps],
                    info=s.info(),
                )
            )
        return out

    @app.get("/v1/stats", response_model=StatsOut, dependencies=auth)
    def stats() -> StatsOut:
        lab.advance()
        return StatsOut(**lab.store.summary(), counters=lab.store.counters(), http_faults=dict(faults.counts))

    return app
