"""A request-body size limit for every route, enforced before the body is parsed.

A declared Content-Length over the limit is answered 413 at once, before a byte of the
body is read; a chunked body is counted as it arrives and refused the moment it passes
the limit, so no route ever buffers more than `limit` bytes. (Starlette's own
RequestBodyLimitMiddleware rewrites every such answer to a plain-text 413; ours stays an
RFC 9457 problem like every other error.)
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.problems import problem


class BodyTooLargeError(HTTPException):
    """Raised from `receive`: an HTTPException, so FastAPI's body parsing re-raises it
    (instead of turning it into a 400) and `service.problems` answers 413."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail="request body too large")


def too_large_detail(limit: int, declared: int | None = None) -> str:
    what = f"Content-Length is {declared:,} bytes" if declared is not None else \
        f"the request body exceeds {limit:,} bytes"
    return f"{what}; at most {limit:,} bytes are accepted per request (split it)"


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self.limit:
            response = problem(413, "Payload too large",
                               too_large_detail(self.limit, int(declared)), scope["path"])
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLargeError()
            return message

        await self.app(scope, counted, send)
