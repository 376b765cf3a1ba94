from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="rows to skip")]


class Page(BaseModel):
    limit: int
    offset: int
    next_offset: int | None = Field(None, description="offset of the next page, if any")


class TimeRange(BaseModel):
    start: AwareDatetime
    end: AwareDatetime
