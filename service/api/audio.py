"""`/v1/sensors/{id}/audio`: recordings in (windows + kept audio, one transaction) and the
held audio of a time range out, as a WAV."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import AwareDatetime, StringConstraints
from starlette.concurrency import run_in_threadpool

from ingest import audio_chunks
from ingest.audio_store import read_audio
from service import audio_ingest
from service.api.ingest import WriterDep, _require_media_type, _target, read_body
from service.audio_ingest import AudioUpload
from service.deps import ConnDep, PoolDep, ReaderDep, SettingsDep
from service.errors import NotFoundError, UnprocessableError
from service.queries import sensors as sensor_queries
from service.schemas.conditions import ConditionName
from service.schemas.ingest import AudioIngestResult, StoredAudioOut
from service.settings import Settings

router = APIRouter(prefix="/sensors", tags=["audio"])
AUDIO_TYPES = ("audio/wav", "audio/x-wav", "audio/wave", "audio/flac", "audio/ogg",
               "application/ogg", "application/octet-stream")
GAPS_HEADER = "Earshot-Audio-Gaps"
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
_AUDIO_BODY = {"requestBody": {"required": True, "content": {
    media: {"schema": {"type": "string", "format": "binary"}} for media in AUDIO_TYPES}}}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_WAV_ANSWER: dict[int | str, dict[str, Any]] = {200: {
    "content": {"audio/wav": _BINARY},
    "description": f"16-bit PCM WAV of the range; gaps are silent and listed in {GAPS_HEADER}"}}


def _store(pool: PoolDep, settings: Settings, sensor_id: UUID, body: bytes,
           upload: AudioUpload) -> AudioIngestResult:
    target = _target(pool, sensor_id)
    with pool.connection() as conn:
        policy = sensor_queries.audio_policy(conn, sensor_id)
    if policy is None:
        raise NotFoundError(f"sensor {sensor_id} does not exist")
    prepared = audio_ingest.prepare(body, target, policy, settings, upload.start, pool)
    stored = audio_ingest.commit(pool, target, policy, prepared, upload)
    audio = StoredAudioOut(policy="keep" if policy.keep else "off", codec=policy.codec,
                           seconds=round(stored.audio.seconds, 6), chunks=stored.audio.chunks,
                           duplicate_chunks=stored.audio.duplicate_chunks,
                           bytes=stored.audio.bytes)
    return AudioIngestResult(accepted=stored.windows.accepted,
                             duplicates=stored.windows.duplicates, start=upload.start,
                             end=stored.end, windows=stored.window_count, audio=audio)


@router.post("/{sensor_id}/audio", response_model=AudioIngestResult, openapi_extra=_AUDIO_BODY)
async def post_audio(
    sensor_id: UUID, request: Request, _: WriterDep, pool: PoolDep,
    settings: SettingsDep,
    start: Annotated[AwareDatetime, Query(description="RFC 3339 time of the first sample")],
    label: Annotated[Label | None, Query(description="class of the whole clip")] = None,
    baseline: Annotated[bool, Query(description="the clip is normal operation")] = False,
    condition: Annotated[ConditionName | None, Query(
        description="operating condition of the whole clip (e.g. 'high-speed')")] = None,
) -> AudioIngestResult:
    """A WAV, FLAC or Ogg clip. For built-in embedding kinds window k is stored at
    start + k * hop; the audio itself is kept under the sensor's audio policy.

    `baseline=true` marks the clip's range as normal operation, `label` as that class,
    `condition` as that operating condition, in the same transaction. Idempotent: a retry
    stores nothing new, annotations included.
    Windows the sensor already sent for this range must agree with the audio (422).
    """
    _require_media_type(request, AUDIO_TYPES)
    await run_in_threadpool(_target, pool, sensor_id)  # 404 before reading the body
    body = await read_body(request, settings.max_body_bytes)
    upload = AudioUpload(start=start, label=label, baseline=baseline, condition=condition)
    return await run_in_threadpool(_store, pool, settings, sensor_id, body, upload)


def check_range(start: datetime, end: datetime, longest_s: float) -> None:
    if end <= start:
        raise UnprocessableError("end must be after start")
    if (end - start).total_seconds() > longest_s:
        raise UnprocessableError(f"the range is {(end - start).total_seconds():g} s long; at "
                                 f"most {longest_s:g} s can be read at once")


@router.get("/{sensor_id}/audio", response_class=Response, responses=_WAV_ANSWER)
def get_audio(sensor_id: UUID, conn: ConnDep, _: ReaderDep, settings: SettingsDep,
              start: Annotated[AwareDatetime, Query()],
              end: Annotated[AwareDatetime, Query()]) -> Response:
    """The held audio of [start, end) as a WAV (at most EARSHOT_AUDIO_MAX_READ_S long);
    404 when none of it is held."""
    check_range(start, end, settings.audio_max_read_s)
    if sensor_queries.get(conn, sensor_id) is None:
        raise NotFoundError(f"sensor {sensor_id} does not exist")
    held = read_audio(conn, sensor_id, start, end)
    if held.held_seconds == 0:
        raise NotFoundError(f"no audio of sensor {sensor_id} is held between "
                            f"{start.isoformat()} and {end.isoformat()}")
    gaps = ", ".join(f"{a.isoformat()}/{b.isoformat()}" for a, b in held.gaps)
    headers = {GAPS_HEADER: gaps or "none", "Earshot-Audio-Held-Seconds":
               f"{held.held_seconds:.3f}", "Cache-Control": "private, max-age=60"}
    return Response(audio_chunks.wav_bytes(held.samples, held.sample_rate),
                    media_type="audio/wav", headers=headers)
