"""Every error the service reports, as a type; mapped to RFC 9457 problem+json once, in
`service.problems`."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status: int = 500
    title: str = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class BadRequestError(ServiceError):
    status, title = 400, "Bad request"


class UnauthorizedError(ServiceError):
    status, title = 401, "Unauthorized"


class ForbiddenError(ServiceError):
    status, title = 403, "Forbidden"


class NotFoundError(ServiceError):
    status, title = 404, "Not found"


class ConflictError(ServiceError):
    status, title = 409, "Conflict"


class UnprocessableError(ServiceError):
    status, title = 422, "Unprocessable content"


class RateLimitedError(ServiceError):
    status, title = 429, "Too many requests"


class UnavailableError(ServiceError):
    status, title = 503, "Service unavailable"
