"""Audio uploads meet a SIGKILLed API and each other.

The API process is killed (twice) while a client uploads real recordings one after the
other. Every upload answered 200 is then held in full (the samples read back bit for bit)
with its windows, once; retrying the uploads that got no answer stores each chunk once.
Two identical uploads sent at the same moment store the chunks once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from service.settings import Settings
from tests.faults.audio_uploads import (
    Upload,
    check_audio_back,
    check_whole_or_nothing,
    duplicate_chunk_rows,
    expected_chunks,
    make_audio_sensor,
    post,
    uploads,
)
from tests.faults.procs import ApiProcess

UPLOADS = 18
KILLS = 2
DEADLINE_S = 300.0
ANSWER_S = 120.0  # one upload, on a box shared with other test suites


class Uploader(threading.Thread):
    """Sends each upload once; what got no 200 (the API died under it) is left for a retry.
    After a failure it waits for the API to come back before the next upload."""

    def __init__(self, api: ApiProcess, sensor_id: str, token: str, work: list[Upload]) -> None:
        super().__init__(daemon=True)
        self.api, self.sensor_id, self.token, self.work = api, sensor_id, token, work
        self.acked: list[int] = []
        self.unanswered: list[int] = []

    def run(self) -> None:
        deadline = time.monotonic() + DEADLINE_S
        with httpx.Client(timeout=ANSWER_S) as client:
            for i, upload in enumerate(self.work):
                try:
                    response = post(client, self.api.url, self.sensor_id, self.token, upload)
                    status = response.status_code
                except httpx.TransportError:
                    status = 0
                if status == 200:
                    self.acked.append(i)
                    continue
                assert status in (0, 503), response.text
                self.unanswered.append(i)
                self._wait_for_api(deadline)

    def _wait_for_api(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.api.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)


def kill_while_uploading(api: ApiProcess, uploader: Uploader) -> None:
    for k in range(KILLS):
        target = (k + 1) * UPLOADS // (KILLS + 1)
        deadline = time.monotonic() + DEADLINE_S
        while len(uploader.acked) + len(uploader.unanswered) < target and \
                time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)  # into the next request: decoding, embedding or committing
        api.kill()
        time.sleep(0.3)
        api.start()


@pytest.mark.slow
def test_sigkill_during_audio_uploads_keeps_acked_audio_whole_and_once(
        settings: Settings, conn: psycopg.Connection, tmp_path: Path) -> None:
    api = ApiProcess(settings, tmp_path / "api.log")
    api.start()
    try:
        sensor_id, token = make_audio_sensor(api.url)
        work = uploads(UPLOADS)
        uploader = Uploader(api, sensor_id, token, work)
        uploader.start()
        kill_while_uploading(api, uploader)
        uploader.join(timeout=DEADLINE_S + 5)
        assert not uploader.is_alive()
        assert sorted(uploader.acked + uploader.unanswered) == list(range(UPLOADS)), api.tail()
        assert uploader.unanswered, "no kill hit an upload in flight"
        # Before any retry: what was acknowledged is whole; the rest is whole or absent.
        held_before = check_whole_or_nothing(conn, sensor_id, work)
        assert all(held_before[i] for i in uploader.acked)
        for i in uploader.acked:
            check_audio_back(api.url, sensor_id, work[i])
        retried = retry(api, sensor_id, token, [work[i] for i in uploader.unanswered])
        print(f"\n{len(uploader.acked)} acked, {len(uploader.unanswered)} unanswered "
              f"({sum(held_before[i] for i in uploader.unanswered)} of them committed before "
              f"the kill); retries stored {retried} chunks")
        assert all(check_whole_or_nothing(conn, sensor_id, work))
        assert duplicate_chunk_rows(conn, sensor_id) == 0
        for i in uploader.unanswered:
            check_audio_back(api.url, sensor_id, work[i])
    finally:
        api.stop()


def retry(api: ApiProcess, sensor_id: str, token: str, work: list[Upload]) -> int:
    """Send each unanswered upload again; a retry stores only what the kill lost."""
    stored = 0
    with httpx.Client(timeout=ANSWER_S) as client:
        for upload in work:
            response = post(client, api.url, sensor_id, token, upload)
            assert response.status_code == 200, response.text
            audio = response.json()["audio"]
            assert audio["chunks"] + audio["duplicate_chunks"] == expected_chunks(upload)
            stored += audio["chunks"]
    return stored


@pytest.mark.slow
def test_identical_uploads_at_the_same_moment_store_the_chunks_once(
        settings: Settings, conn: psycopg.Connection, tmp_path: Path) -> None:
    api = ApiProcess(settings, tmp_path / "api.log")
    api.start()
    try:
        sensor_id, token = make_audio_sensor(api.url, name="twins")
        for upload in uploads(4, hours_ago=3.0):
            answers = simultaneously(api, sensor_id, token, upload)
            assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
            audio = sorted((a.json()["audio"] for a in answers), key=lambda a: a["chunks"])
            chunks = expected_chunks(upload)
            assert (audio[0]["chunks"], audio[0]["duplicate_chunks"]) == (0, chunks)
            assert (audio[1]["chunks"], audio[1]["duplicate_chunks"]) == (chunks, 0)
            assert sorted(a.json()["accepted"] for a in answers)[0] == 0
            check_audio_back(api.url, sensor_id, upload)
        assert duplicate_chunk_rows(conn, sensor_id) == 0
    finally:
        api.stop()


def simultaneously(api: ApiProcess, sensor_id: str, token: str,
                   upload: Upload) -> list[httpx.Response]:
    barrier = threading.Barrier(2)
    answers: list[httpx.Response] = []

    def send() -> None:
        with httpx.Client(timeout=ANSWER_S) as client:
            barrier.wait()
            answers.append(post(client, api.url, sensor_id, token, upload))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers
