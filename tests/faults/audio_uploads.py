"""Audio uploads for the fault tests: real recordings, a sensor that embeds them, one
upload with its outcome, and the checks that what was stored is whole, once, bit for bit."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
import numpy as np
import psycopg
import soundfile as sf

from ingest.audio_chunks import CHUNK_SECONDS
from ingest.features import embed
from tests.conftest import DATA_DIR
from tests.faults.procs import ADMIN

# 16-bit PCM sources at several rates and channel counts (stored as 16-bit FLAC: lossless),
# and one Ogg Vorbis clip (decoded, then stored as 16-bit FLAC).
RECORDINGS = [
    "bldc/bldc_motor__healthy_M1_1400rpm.wav",  # 44.1 kHz stereo
    "bldc/bldc_motor__healthy_M1_1450rpm.wav",  # 16 kHz stereo
    "dcase2020/dcase2020_dev_unknown__test__anomaly_id_00_00000000.wav",  # 16 kHz mono
    "mimii/mimii_0dB_singles__fan_id_00_abnormal_00000000.wav",  # 16 kHz mono
    "dcase2023/dcase2023_singles__ToyCar_test_section_00_source_test_normal_0028_car_C2_"
    "spd_34V_mic_1.wav",  # 16 kHz mono, 12 s
    "esc10/esc10__dog_bark__1-100032-A.ogg",  # 44.1 kHz mono Vorbis
]
SPACING_S = 20  # between upload starts: longer than any recording, so ranges never touch
_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class Upload:
    path: str
    start: datetime
    body: bytes

    @property
    def content_type(self) -> str:
        return "audio/ogg" if self.path.endswith(".ogg") else "audio/wav"

    @property
    def lossless(self) -> bool:
        return not self.path.endswith(".ogg")

    def original(self) -> tuple[np.ndarray, int]:
        samples, rate = sf.read(io.BytesIO(self.body), dtype="int16", always_2d=True)
        return samples, int(rate)

    @property
    def end(self) -> datetime:
        """Just past the last sample (rounded up to the next microsecond)."""
        info = sf.info(io.BytesIO(self.body))
        return self.start + (-(-info.frames * 1_000_000 // info.samplerate)) * _US


def uploads(count: int, hours_ago: float = 2.0) -> list[Upload]:
    """`count` uploads cycling through RECORDINGS, SPACING_S apart, in the past."""
    bodies = {path: (DATA_DIR / path).read_bytes() for path in RECORDINGS}
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=hours_ago)
    return [Upload(path, base + timedelta(seconds=i * SPACING_S) + i * 137 * _US, bodies[path])
            for i, path in enumerate(RECORDINGS[i % len(RECORDINGS)] for i in range(count))]


def make_audio_sensor(url: str, name: str = "mic") -> tuple[str, str]:
    """(sensor id, ingest token) of a logmel-v1 sensor keeping FLAC audio."""
    machine = httpx.post(f"{url}/v1/machines", headers=ADMIN, timeout=10,
                         json={"name": name, "kind": "pump"})
    assert machine.status_code == 201, machine.text
    sensor = httpx.post(f"{url}/v1/machines/{machine.json()['id']}/sensors", headers=ADMIN,
                        timeout=10, json={"name": name, "embedding": {"kind": "logmel-v1"}})
    assert sensor.status_code == 201, sensor.text
    return sensor.json()["id"], sensor.json()["ingest_token"]


def post(client: httpx.Client, url: str, sensor_id: str, token: str,
         upload: Upload) -> httpx.Response:
    return client.post(f"{url}/v1/sensors/{sensor_id}/audio", content=upload.body,
                       params={"start": upload.start.isoformat()},
                       headers={"Authorization": f"Bearer {token}",
                                "Content-Type": upload.content_type})


def check_audio_back(url: str, sensor_id: str, upload: Upload) -> None:
    """GET the upload's range: the samples sent come back (bit for bit when lossless)."""
    answer = httpx.get(f"{url}/v1/sensors/{sensor_id}/audio", headers=ADMIN, timeout=30,
                       params={"start": upload.start.isoformat(),
                               "end": upload.end.isoformat()})
    assert answer.status_code == 200, f"{upload.path} at {upload.start}: {answer.text}"
    back, rate = sf.read(io.BytesIO(answer.content), dtype="int16", always_2d=True)
    original, original_rate = upload.original()
    assert rate == original_rate and back.shape[1] == original.shape[1]
    assert back.shape[0] >= original.shape[0], "audio missing at the end"
    back = back[:original.shape[0]]
    if upload.lossless:
        assert np.array_equal(back, original), f"{upload.path}: samples differ"
    else:  # decoded Vorbis: libsndfile scales float to int16 by 32767 on the way out and
        # int16 to float by 1/32768 on the way in, so two conversions differ by up to 2 steps
        assert np.abs(back.astype(np.int32) - original).max() <= 2, upload.path


@dataclass(frozen=True)
class HeldRows:
    """What the database holds in an upload's range."""

    chunks: int
    chunk_starts: int  # distinct (sensor, t_start): equal to `chunks` unless duplicated
    windows: int


HELD = """
SELECT (SELECT count(*) FROM audio_chunks WHERE sensor_id = %(s)s
          AND t_start >= %(a)s AND t_start < %(b)s),
       (SELECT count(DISTINCT t_start) FROM audio_chunks WHERE sensor_id = %(s)s
          AND t_start >= %(a)s AND t_start < %(b)s),
       (SELECT count(*) FROM embeddings WHERE sensor_id = %(s)s AND t >= %(a)s AND t < %(b)s)
"""


def held(conn: psycopg.Connection, sensor_id: str, upload: Upload) -> HeldRows:
    row = conn.execute(HELD, {"s": UUID(sensor_id), "a": upload.start,
                              "b": upload.end}).fetchone()
    assert row is not None
    return HeldRows(int(row[0]), int(row[1]), int(row[2]))


def duplicate_chunk_rows(conn: psycopg.Connection, sensor_id: str) -> int:
    row = conn.execute("SELECT count(*) - count(DISTINCT t_start) FROM audio_chunks "
                       "WHERE sensor_id = %s", (UUID(sensor_id),)).fetchone()
    assert row is not None
    return int(row[0])


def expected_windows(upload: Upload) -> int:
    """Windows the server computes from this recording (the same function it runs)."""
    samples, rate = sf.read(io.BytesIO(upload.body), dtype="float32", always_2d=True)
    return int(embed(samples, int(rate)).shape[0])


def expected_chunks(upload: Upload) -> int:
    info = sf.info(io.BytesIO(upload.body))
    return -(-info.frames // round(CHUNK_SECONDS * info.samplerate))


def check_whole_or_nothing(conn: psycopg.Connection, sensor_id: str,
                           work: list[Upload]) -> list[bool]:
    """Each upload is held whole (its one chunk and every window) or not at all; never
    audio without its windows or the reverse. Returns which are held."""
    stored = []
    for upload in work:
        rows = held(conn, sensor_id, upload)
        chunks = expected_chunks(upload)
        whole = HeldRows(chunks, chunks, expected_windows(upload))
        assert rows in (HeldRows(0, 0, 0), whole), f"{upload.path} at {upload.start}: {rows}"
        stored.append(rows == whole)
    return stored
