"""Sensors at the API edge."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ingest.features import EMBEDDINGS, RECOMMENDED, is_builtin, spec_of
from service.schemas.common import Name, Page

EmbeddingKind = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$")]
Dim = Annotated[int, Field(ge=1, le=4096)]
WindowS = Annotated[float, Field(gt=0, le=60, description="window length in seconds")]
SampleRate = Annotated[int, Field(ge=1000, le=384000, description="the sensor's audio rate, Hz")]


class EmbeddingIn(BaseModel):
    """A built-in kind (the server can compute it from audio; its dim is fixed) or any other
    name for vectors the sensor computes itself (then `dim` is required)."""

    model_config = ConfigDict(extra="forbid")
    kind: EmbeddingKind
    dim: Dim | None = None

    @model_validator(mode="after")
    def _dim_fits_kind(self) -> EmbeddingIn:
        spec = spec_of(self.kind)
        if spec is not None:
            fixed = spec.dim
            if self.dim is not None and self.dim != fixed:
                raise ValueError(f"embedding {self.kind!r} has dim {fixed}, not "
                                 f"{self.dim} (omit dim or send {fixed})")
            self.dim = fixed
        elif self.dim is None:
            raise ValueError(f"dim is required for embedding kind {self.kind!r}, which is not "
                             f"built-in ({', '.join(EMBEDDINGS)}, fleet-v<N>)")
        return self


AudioPolicyName = Literal["keep", "off"]
AudioCodec = Literal["flac", "vorbis", "opus"]


class AudioIn(BaseModel):
    """What happens to the audio this sensor sends (docs/audio.md)."""

    model_config = ConfigDict(extra="forbid")
    policy: AudioPolicyName | None = Field(
        None, description="keep: store every second received (live retention, plus pins); "
                          "off: store none")
    codec: AudioCodec | None = Field(
        None, description="flac (lossless), vorbis or opus (lossy, about 5-10x smaller)")

    def changes(self) -> dict[str, Any]:
        return {f"audio_{k}": v for k, v in self.model_dump(exclude_none=True).items()}


class AudioOut(BaseModel):
    policy: AudioPolicyName
    codec: AudioCodec


class SensorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    embedding: EmbeddingIn = Field(
        default_factory=lambda: EmbeddingIn(kind=RECOMMENDED),
        description=f"omitted: Earshot's recommended built-in kind ({RECOMMENDED})")
    window_s: WindowS | None = None
    sample_rate: SampleRate | None = None
    audio: AudioIn = Field(default_factory=AudioIn)

    @model_validator(mode="after")
    def _window_fits_kind(self) -> SensorCreate:
        check_window(self.embedding.kind, self.window_s)
        return self

    def resolved_window_s(self) -> float:
        spec = spec_of(self.embedding.kind)
        return self.window_s or (spec.window_s if spec else 1.0)


def check_window(kind: str, window_s: float | None) -> None:
    """Built-in embeddings define their own window; a different one would mislabel data."""
    spec = spec_of(kind)
    if spec is not None and window_s is not None and window_s != spec.window_s:
        raise ValueError(f"built-in embedding {kind!r} uses {spec.window_s:g} s windows, "
                         f"not {window_s:g} s")


class SensorPatch(BaseModel):
    """Only the fields present change. The embedding cannot change: stored vectors would
    no longer match it (create a new sensor instead)."""

    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    window_s: WindowS | None = None
    sample_rate: SampleRate | None = None
    audio: AudioIn | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> SensorPatch:
        for field in ("name", "window_s", "audio"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null (omit it to keep the current value)")
        return self

    def changes(self) -> dict[str, Any]:
        changes = self.model_dump(include=self.model_fields_set - {"audio"})
        if self.audio is not None:
            changes.update(self.audio.changes())
        return changes


class EmbeddingOut(BaseModel):
    kind: str
    dim: int
    builtin: bool


class SensorOut(BaseModel):
    id: UUID
    machine_id: UUID
    name: str
    embedding: EmbeddingOut
    window_s: float
    sample_rate: int | None
    audio: AudioOut
    last_seen_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SensorOut:
        kind = row["embedding_kind"]
        embedding = EmbeddingOut(kind=kind, dim=row["dim"], builtin=is_builtin(kind))
        audio = AudioOut(policy=row["audio_policy"], codec=row["audio_codec"])
        fields = {k: v for k, v in row.items() if k in cls.model_fields}
        return cls(**fields, embedding=embedding, audio=audio)


class SensorCreated(SensorOut):
    ingest_token: str = Field(description="shown once; only its digest is stored")


class SensorList(Page):
    items: list[SensorOut]
