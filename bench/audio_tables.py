"""BENCHMARKS.md text and tables of the audio benchmark (bench.audio measures)."""

from __future__ import annotations

from typing import Any

from bench.common import Table, fmt

CODECS = ("flac", "vorbis", "opus")
DAY_S = 86_400


def _ms(timing: dict[str, Any], key: str = "p50_s") -> float:
    return float(timing[key]) * 1000


def _clip(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def ingest_table(cells: list[dict[str, Any]]) -> Table:
    rows = [[c["codec"], _clip(c["clip_s"]), str(c["uploads"]), fmt(c["api_rate"]),
             fmt(c["copy_rate"]), f"{c['api_rate'] / c['copy_rate']:.3f}x",
             fmt(c["api_cpu_per_audio_s"] * 60), fmt(c["api_s"] * 1000),
             fmt(c["bytes"] / c["clip_s"] / 1000)] for c in cells]
    return Table("Ingest: POST /v1/sensors/{id}/audio (16-bit WAV, 16 kHz mono) against binary "
                 "COPY of the same encoded chunks, same run (medians)",
                 ["codec", "clip", "uploads", "API: audio s stored per s",
                  "reference COPY: audio s per s", "API / COPY", "API CPU s per audio min",
                  "request ms", "stored kB per audio s"], rows)


def growth_table(cells: list[dict[str, Any]]) -> Table:
    sizes = sorted({c["clip_s"] for c in cells})
    first = sizes[0]
    rows = []
    for seconds in sizes:
        row = [_clip(seconds), f"{seconds / first:g}x"]
        for codec in CODECS:
            base = next(c for c in cells if c["codec"] == codec and c["clip_s"] == first)
            cell = next(c for c in cells if c["codec"] == codec and c["clip_s"] == seconds)
            row.append(f"{cell['api_s'] / base['api_s']:.2f}x")
        rows.append(row)
    return Table(f"Growth: request time relative to a {_clip(first)} clip",
                 ["clip", "audio", *CODECS], rows)


def phase_table(split: dict[str, dict[str, float]], seconds: float) -> Table:
    rows = []
    for codec, steps in split.items():
        total = sum(steps.values())
        rows.append([codec, *[f"{fmt(v * 1000)} ({v / total:.0%})" for v in steps.values()],
                     fmt(total * 1000), fmt(seconds / total)])
    names = list(next(iter(split.values())))
    return Table(f"Where an upload's server time goes: one {_clip(seconds)} clip, in-process, "
                 "ms (share)",
                 ["codec", *[f"{n}" for n in names], "total ms", "audio s per s"], rows)


def _cpu(timing: dict[str, Any]) -> str:
    return fmt(float(timing["cpu_s"]) * 1000)


def read_table(reads: dict[str, list[dict[str, Any]]]) -> Table:
    rows = []
    for codec, cells in reads.items():
        for c in cells:
            api, select = _ms(c["api"]), _ms(c["select"])
            rows.append([codec, _clip(c["range_s"]), f"{c['held_s']:g} s",
                         f"{fmt(api)} / {fmt(_ms(c['api'], 'p95_s'))}", _cpu(c["api"]),
                         f"{fmt(select)} / {fmt(_ms(c['select'], 'p95_s'))}",
                         f"{api / select:.1f}x",
                         f"{fmt(_ms(c['read_audio']))} / {_cpu(c['read_audio'])}",
                         fmt(c["stored_bytes"] / 1e6), fmt(c["wav_bytes"] / 1e6)])
    return Table("WAV range reads: GET /v1/sensors/{id}/audio against the raw SELECT of the same "
                 "chunks' bytes, same run",
                 ["codec", "range", "held", "API p50 / p95 ms", "API CPU ms per request",
                  "reference SELECT p50 / p95 ms", "API / SELECT",
                  "read_audio in-process (SELECT + decode) p50 ms / CPU ms", "stored MB",
                  "WAV MB"], rows)


def spectrogram_table(cells: list[dict[str, Any]]) -> Table:
    rows = []
    for c in cells:
        alone = _ms(c["librosa"])
        rows.append([_clip(c["range_s"]), c["source"], str(c["columns"]),
                     f"{fmt(_ms(c['png']))} / {fmt(_ms(c['png'], 'p95_s'))}", _cpu(c["png"]),
                     f"{fmt(_ms(c['json']))} / {fmt(_ms(c['json'], 'p95_s'))}", _cpu(c["json"]),
                     f"{fmt(alone)} / {_cpu(c['librosa'])}",
                     f"{_ms(c['png']) / alone:.1f}x", f"{_ms(c['json']) / alone:.1f}x"])
    return Table("Spectrograms: GET /v1/machines/{id}/spectrogram (FLAC sensor) against librosa "
                 "melspectrogram alone on the same samples, same run",
                 ["range", "source", "columns", "PNG p50 / p95 ms", "PNG API CPU ms",
                  "JSON p50 / p95 ms", "JSON API CPU ms", "reference librosa p50 ms / CPU ms",
                  "PNG / librosa", "JSON / librosa"], rows)


def _per_day(bytes_per_s: float) -> str:
    return f"{fmt(bytes_per_s * DAY_S / 1e6)} MB"


def storage_table(types: list[dict[str, Any]]) -> Table:
    rows = [[t["label"], _per_day(t["pcm16_bps"]),
             *[f"{_per_day(t[c])} ({t[c] / t['pcm16_bps']:.0%})" for c in CODECS]]
            for t in types]
    return Table("Storage per sensor-day: encoded bytes of real recordings at their native rate "
                 "x 86,400 s (share of raw 16-bit PCM)",
                 ["recordings", "reference: raw 16-bit PCM", *CODECS], rows)


def disk_table(disk: dict[str, dict[str, Any]]) -> Table:
    rows = []
    for codec, d in disk.items():
        overhead = (d["table_growth_bytes"] - d["encoded_bytes"]) / d["chunks"]
        rows.append([codec, str(d["chunks"]), f"{d['audio_s']:g} s", fmt(d["encoded_bytes"] / 1e6),
                     fmt(d["table_growth_bytes"] / 1e6),
                     f"{d['table_growth_bytes'] / d['encoded_bytes']:.3f}x",
                     fmt(overhead / 1000), _per_day(d["table_growth_bytes"] / d["audio_s"])])
    return Table("On disk: growth of audio_chunks (hypertable_size: heap, TOAST, index) when the "
                 "storage set above is stored with insert_audio",
                 ["codec", "chunks", "audio", "encoded MB", "table growth MB",
                  "growth / encoded", "overhead kB per chunk", "on disk per sensor-day"], rows)


def sensor_day_rows(raw: dict[str, Any]) -> list[list[str]]:
    """One row per codec for docs: median over machine types of 16 kHz mono recordings."""
    mono = [t for t in raw["storage"]["types"] if t["rate"] == 16000 and t["channels"] == 1]
    rows = []
    for codec in CODECS:
        rates = sorted(t[codec] for t in mono)
        rows.append([codec, _per_day(rates[len(rates) // 2]),
                     f"{_per_day(rates[0])} to {_per_day(rates[-1])}"])
    return rows


TEXT = """
**Method.** A fresh database on the embedded cluster and the API as `earshot api` runs it
(one uvicorn process, one BLAS thread), no scheduler. One `logmel-v1` sensor per codec
(audio policy `keep`), each on its own machine. Uploads are 16-bit WAV bodies of real
16 kHz mono machine recordings (MIMII, DCASE; the data dir's clips played back to back, a
different stretch for every upload) of {sizes}, {repeats} per size and codec, codecs
interleaved; each sensor's uploads follow one another, so it holds {held:g} s without a
gap, which the reads use. Times are wall clock at the client over HTTP on 127.0.0.1.
**Reference (ingest), same run:** the chunk rows each upload stored (the same encoded
bytes), written again with psycopg's binary COPY (`write_row`, one commit per upload) into
`bench_audio_copy`, a hypertable made `LIKE audio_chunks INCLUDING ALL`: the database's
share of the work only. The split table times one upload's server work
in-process: decode the body, embed (logmel-v1), encode the chunks, and the store's own
transaction (`service.audio_ingest.commit`: windows, chunks, commit).
**Reads:** `GET /v1/sensors/{{id}}/audio` of {ranges} from the first upload, against the raw
SELECT of the same chunks' bytes (psycopg, binary results, no decoding) and `read_audio`
in-process (SELECT + decode, no WAV, no HTTP). CPU per request is the API process's
(from /proc), CPU of the in-process references this process's. **Spectrograms:** PNG
and JSON of the same ranges against librosa's melspectrogram alone on the same samples
(same FFT, hop and mel bands).
`read_audio` reads the chunks as binary results and tracks gaps as spans: a first run of
this benchmark found a 10-minute FLAC read spending more time parsing hex bytea and
scanning a per-frame gap mask than decoding.
**Storage:** up to {storage:g} s of each machine type's recordings at their native rate
and channels, encoded as the store encodes them; raw 16-bit PCM is the reference. The
on-disk table adds what PostgreSQL adds per row (heap tuple, TOAST pieces of ~2 kB, the
index).

This box is shared (the load average at the start is in the line above): wall-clock
figures drift between runs and can be several times the CPU time; the ratios to the
same-run references and the CPU figures hold better.

{verdict}
"""


def _per_core(cpu_per_audio_s: float) -> str:
    """Audio seconds one core ingests per second; a tiny run's CPU time can fall under the
    process clock's 10 ms tick and read 0."""
    if cpu_per_audio_s <= 0:
        return "too little CPU to measure (under the clock's tick) at this size"
    return f"at most {fmt(1 / cpu_per_audio_s)} audio s per s per core"


def verdict(raw: dict[str, Any]) -> str:
    cells = raw["ingest"]
    largest = max(c["clip_s"] for c in cells)
    big = {c["codec"]: c for c in cells if c["clip_s"] == largest}
    lines = [f"**Ingest** of a {_clip(largest)} clip: " + ", ".join(
        f"{codec} {fmt(c['api_rate'])} audio s per s (its COPY {fmt(c['copy_rate'])}; API CPU "
        f"{fmt(c['api_cpu_per_audio_s'] * 60)} s per audio minute, so "
        f"{_per_core(c['api_cpu_per_audio_s'])})"
        for codec, c in big.items()) + "."]
    for codec, steps in raw["phases"].items():
        top = max(steps, key=lambda k: steps[k])
        total = sum(steps.values())
        share = f"{steps[top] / total:.0%}" if total > 0 else "(unmeasurably little) all"
        lines.append(f"- {codec}: {top} takes {share} of an upload's server time.")
    reads = raw["reads"]["flac"]
    longest = max(reads, key=lambda c: c["range_s"])
    lines.append(f"\n**A {_clip(longest['range_s'])} WAV** (FLAC) takes "
                 f"{fmt(_ms(longest['api']))} ms p50 ({_cpu(longest['api'])} ms API CPU), the "
                 f"raw SELECT of its chunks {fmt(_ms(longest['select']))} ms and SELECT + decode "
                 f"in-process {fmt(_ms(longest['read_audio']))} ms: the rest is the 16-bit WAV "
                 "and HTTP.")
    return "\n".join(lines)


def render(raw: dict[str, Any]) -> tuple[str, list[Table]]:
    sizes = ", ".join(_clip(s) for s in raw["sizes_s"])
    ranges = ", ".join(_clip(c["range_s"]) for c in raw["reads"]["flac"])
    text = TEXT.format(sizes=sizes, repeats=raw["repeats"],
                       held=sum(raw["sizes_s"]) * raw["repeats"], ranges=ranges,
                       storage=raw["storage_s"], verdict=verdict(raw))
    tables = [ingest_table(raw["ingest"]), growth_table(raw["ingest"]),
              phase_table(raw["phases"], raw["phase_s"]), read_table(raw["reads"]),
              spectrogram_table(raw["spectrograms"]), storage_table(raw["storage"]["types"]),
              disk_table(raw["storage"]["disk"])]
    return text, tables
