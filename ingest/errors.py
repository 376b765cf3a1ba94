"""Errors raised while ingesting embeddings or audio.

Every error carries what the HTTP layer needs for an RFC 9457 problem response: a short
``title``, a human-readable ``detail`` (also ``str(error)``), the ``status`` code, and when a
particular window is at fault, ``window``: the zero-based index of the first offending window
in the request, so a client can find the bad row without bisecting its batch.
"""

from __future__ import annotations

from typing import Any

_JSON_NAMES = {str: "a string", bool: "a boolean", None.__class__: "null", list: "an array"}


def json_type_name(value: Any) -> str:
    """What a decoded JSON value is, as an error message says it ("a string", "null")."""
    return "an object" if isinstance(value, dict) else _JSON_NAMES.get(type(value), "a number")


class IngestError(Exception):
    """Base class: a client-side problem with an ingest request (always a 4xx status)."""

    default_title = "Invalid ingest request"
    default_status = 400

    def __init__(
        self,
        detail: str,
        *,
        window: int | None = None,
        status: int | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.window = window
        self.status = self.default_status if status is None else status
        self.title = self.default_title if title is None else title
        if not 400 <= self.status < 500:
            raise ValueError(f"ingest errors are client errors (4xx), got {self.status}")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, window={self.window}, "
            f"detail={self.detail!r})"
        )


class BatchValidationError(IngestError):
    """An embedding batch is rejected as a whole.

    422 when the body is well-formed but its content is wrong (shape, values, timestamps);
    400 when the body cannot be parsed at all (malformed JSON, truncated binary).
    """

    default_title = "Invalid embedding batch"
    default_status = 422


class PayloadTooLargeError(IngestError):
    """The request carries more than the server accepts (bytes, windows or seconds)."""

    default_title = "Payload too large"
    default_status = 413


class UnsupportedMediaTypeError(IngestError):
    """The Content-Type (or the audio container inside the body) is not one Earshot reads."""

    default_title = "Unsupported media type"
    default_status = 415


class AudioError(IngestError):
    """Uploaded audio cannot be turned into embeddings: corrupt, empty, too short or long,
    too many channels, or an unsupported sample rate."""

    default_title = "Unprocessable audio"
    default_status = 422
