"""Ingest responses and dead-letter listings at the API edge."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from service.schemas.common import Page


class IngestResult(BaseModel):
    accepted: int = Field(description="windows stored by this request")
    duplicates: int = Field(description="windows already stored (a retried batch)")


class StoredAudioOut(BaseModel):
    policy: str = Field(description="the sensor's audio policy: keep or off")
    codec: str
    seconds: float = Field(description="seconds of audio stored by this request")
    chunks: int = Field(description="chunks stored by this request")
    duplicate_chunks: int = Field(description="chunks already held (a retried upload)")
    bytes: int = Field(description="encoded bytes stored by this request")


class AudioIngestResult(IngestResult):
    start: datetime = Field(description="start of the first stored window")
    end: datetime = Field(description="end of the last stored window")
    windows: int = Field(description="windows computed from the audio")
    audio: StoredAudioOut


class IngestErrorOut(BaseModel):
    id: int
    sensor_id: UUID | None
    topic: str | None
    source: str
    reason: str
    payload_excerpt: str | None
    received_at: datetime


class IngestErrorList(Page):
    items: list[IngestErrorOut]
