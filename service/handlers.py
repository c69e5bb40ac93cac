"""Exception handlers: every error leaves the API as an RFC 9457 problem document."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import (
    PROBLEM_MEDIA_TYPE,
    HttpError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    Problem,
    ServiceUnavailable,
)
from service.openapi import allowed_methods
from service.transactions import WriteLockTimeout

log = logging.getLogger("modelpress.api")

_HTTP_PROBLEMS: dict[int, type[Problem]] = {404: NotFound, 405: MethodNotAllowed}


def problem_response(document: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON response with the problem media type."""
    return JSONResponse(
        document, status_code=document["status"], headers=headers, media_type=PROBLEM_MEDIA_TYPE
    )


async def _problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc.to_document(instance=request.url.path), exc.headers)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problem = InvalidRequest.from_validation(exc.errors(), root="request")
    return problem_response(problem.to_document(instance=request.url.path))


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # The framework raises these for routing (404, 405) and for bodies it cannot parse (400); any
    # other status would come from a mount such as static files, and reads as a bad request.
    kind = _HTTP_PROBLEMS.get(exc.status_code, HttpError)
    document = kind(str(exc.detail)).to_document(instance=request.url.path)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # The router names only the first route that matched the path; RFC 9110 wants them all.
        allowed = allowed_methods(request.app, request.url.path)
        headers["Allow"] = ", ".join(allowed) or headers.get("Allow", "")
    return problem_response(document, headers)


async def _database(request: Request, exc: Exception) -> JSONResponse:
    # A dropped or refused connection is the database being away, not a bug: say 503 and retry later.
    log.warning("database unavailable: %s", exc)
    problem = ServiceUnavailable("the database is not reachable; retry shortly", headers={"Retry-After": "5"})
    return problem_response(problem.to_document(instance=request.url.path), problem.headers)


async def _busy(request: Request, _exc: Exception) -> JSONResponse:
    # SQLite's single write lock stayed taken for the request's whole wait: a moment's contention.
    log.warning("database write lock busy on %s", request.url.path)
    problem = ServiceUnavailable(
        "the database is busy with other writes; retry in a second", headers={"Retry-After": "1"}
    )
    return problem_response(problem.to_document(instance=request.url.path), problem.headers)


async def _dbapi(request: Request, exc: Exception) -> JSONResponse:
    # A connection cut mid-statement (a restarting server) is an outage; any other driver error is a bug.
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return await _database(request, exc)
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    problem = Problem("an unexpected error occurred; it has been logged")
    return problem_response(problem.to_document(instance=request.url.path))


def install(app: FastAPI) -> None:
    """Register the handlers; the Problem handler covers every subclass."""
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(WriteLockTimeout, _busy)
    app.add_exception_handler(OperationalError, _database)
    app.add_exception_handler(InterfaceError, _database)
    app.add_exception_handler(PoolTimeout, _database)
    app.add_exception_handler(DBAPIError, _dbapi)
    app.add_exception_handler(Exception, _unexpected)
