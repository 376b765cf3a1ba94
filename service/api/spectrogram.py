"""`/v1/machines/{id}/spectrogram`: what a range sounded like, as a picture (PNG) or a
matrix (JSON) — from stored audio, or coarsely from logmel-v1 band means (also the first
64 values of logmel-gwrp-v1) where only windows were kept (`source` says which)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import numpy as np
import psycopg
from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from ingest import spectrogram
from ingest.audio_store import held_ranges, read_audio
from ingest.features import LOGMEL_GWRP_V1, LOGMEL_V1, LOGMEL_V1_H250
from ingest.store import read_windows
from service.api.audio import check_range
from service.deps import ConnDep, ReaderDep, SettingsDep, require_machine
from service.errors import NotFoundError
from service.queries import sensors as sensor_queries
from service.settings import Settings

router = APIRouter(tags=["audio"])
SOURCE_HEADER = "Earshot-Spectrogram-Source"
# Vectors whose first 64 values are logmel-v1 band means.
BAND_KINDS = (LOGMEL_V1, LOGMEL_V1_H250, LOGMEL_GWRP_V1)
MAX_SENSORS = 100
_ANSWERS: dict[int | str, dict[str, Any]] = {200: {
    "content": {"image/png": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object"}}},
    "description": "PNG (low frequencies at the bottom), or with Accept: application/json "
                   "{source, sensor_id, start, end, times_s, frequencies_hz, values_db}"}}


def _sensors(conn: psycopg.Connection, machine_id: UUID,
             sensor_id: UUID | None) -> list[dict[str, Any]]:
    require_machine(conn, machine_id)
    rows = sensor_queries.list_for_machine(conn, machine_id, MAX_SENSORS, 0)
    if sensor_id is not None:
        rows = [r for r in rows if r["id"] == sensor_id]
        if not rows:
            raise NotFoundError(f"machine {machine_id} has no sensor {sensor_id}")
    return rows


def _compute(conn: psycopg.Connection, rows: list[dict[str, Any]], start: datetime,
             end: datetime, settings: Settings) -> tuple[UUID, spectrogram.Spectrogram]:
    """From the first sensor with audio in the range, else from the first with band-mean
    windows there."""
    seconds = (end - start).total_seconds()
    if seconds <= settings.audio_max_read_s:
        for row in rows:
            if held_ranges(conn, row["id"], start, end):
                held = read_audio(conn, row["id"], start, end)
                return row["id"], spectrogram.from_audio(held.samples, held.sample_rate)
    for row in rows:
        if row["embedding_kind"] in BAND_KINDS:
            times, vectors = read_windows(conn, row["id"], start, end, row["dim"])
            if times:
                offsets = np.array([(t - start).total_seconds() for t in times])
                return row["id"], spectrogram.from_logmel_windows(offsets, vectors,
                                                                  row["window_s"])
    raise NotFoundError(
        "neither audio nor logmel-v1 windows are held for this machine between "
        f"{start.isoformat()} and {end.isoformat()}"
        + ("" if seconds <= settings.audio_max_read_s else
           f" (audio is only drawn for ranges up to {settings.audio_max_read_s:g} s)"))


@router.get("/machines/{machine_id}/spectrogram", response_class=Response,
            responses=_ANSWERS)
def get_spectrogram(machine_id: UUID, conn: ConnDep, _: ReaderDep, settings: SettingsDep,
                    start: Annotated[AwareDatetime, Query()],
                    end: Annotated[AwareDatetime, Query()],
                    sensor_id: Annotated[UUID | None, Query()] = None,
                    accept: Annotated[str | None, Header()] = None) -> Response:
    """Log-mel spectrogram of [start, end): from audio up to EARSHOT_AUDIO_MAX_READ_S,
    from windows (one column each) up to EARSHOT_SPECTROGRAM_MAX_EMBEDDING_S."""
    check_range(start, end, max(settings.audio_max_read_s,
                                settings.spectrogram_max_embedding_s))
    rows = _sensors(conn, machine_id, sensor_id)
    chosen, picture = _compute(conn, rows, start, end, settings)
    if accept is not None and "application/json" in accept:
        return JSONResponse({
            "source": picture.source, "sensor_id": str(chosen), "start": start.isoformat(),
            "end": end.isoformat(), "times_s": np.round(picture.times_s, 4).tolist(),
            "frequencies_hz": np.round(picture.frequencies_hz, 2).tolist(),
            "values_db": np.round(picture.values_db, 2).tolist()},
            headers={SOURCE_HEADER: picture.source})
    return Response(spectrogram.png(picture), media_type="image/png",
                    headers={SOURCE_HEADER: picture.source, "Earshot-Sensor-Id": str(chosen)})
