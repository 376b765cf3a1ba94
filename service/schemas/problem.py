"""RFC 9457 problem details as declared in /openapi.json (service.problems writes them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = Field(description="a URI naming the kind of problem")
    title: str
    status: int
    detail: str = Field(description="what is wrong and how to fix it")
    instance: str | None = Field(None, description="the request path")


def _response(description: str) -> dict[str, Any]:
    return {"description": description, "model": Problem,
            "content": {"application/problem+json": {}}}


# Declared on every router (FastAPI `responses=`), so generated clients know the error shape.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _response("Bad request"),
    401: _response("Missing or invalid credentials"),
    403: _response("The credentials do not allow this (or a failed CSRF check)"),
    404: _response("No such resource"),
    409: _response("Conflicts with the current state"),
    413: _response("Request body too large"),
    422: _response("Invalid request: the detail says which field and why"),
    429: _response("Rate limited: retry after the Retry-After header"),
    503: _response("Database unavailable: retry after the Retry-After header"),
}
