"""`earshot sensor`: play recordings into Earshot the way a sensor or gateway would.

    earshot sensor stream --url http://127.0.0.1:8000 --sensor-id ID --token est_... PATH
    earshot sensor stream --url ... --sensor-id ID --token est_... --send-audio PATH
    earshot sensor stream --mqtt mqtt://ID:PASSWORD@broker:1883 --sensor-id ID --realtime PATH
    earshot sensor stream --url ... --sensor-id ID --token est_... --embedding fleet-v3 PATH
    earshot sensor upload --url ... --sensor-id ID --token est_... --baseline FOLDER

`stream` computes logmel-v1 locally window by window (--embedding logmel-gwrp-v1: the
pooled built-in kind; fleet-v<N>: the learned fleet embedding, from its ONNX model
downloaded from --url and checked against its SHA-256, run with onnxruntime) and sends
batches (HTTP binary, or MQTT QoS 1), with --send-audio also the audio they came from (FLAC
chunks, over HTTP or to the sensor's MQTT audio topic); `upload` posts each file to the
audio endpoint. Both retry while the service is unreachable and are safe to re-run with
the same --start: stored windows and audio are deduplicated.
The token may also come from EARSHOT_SENSOR_TOKEN (keeps it out of the process list).

Exit status: 0 done, 1 refused (HTTP 4xx, or the MQTT broker's ACL), 2 bad arguments,
3 gave up retrying.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from uuid import UUID

from ingest.audio_shipper import AudioShipper
from ingest.client import (
    BrokerRefusedError,
    MqttSender,
    RejectedError,
    RetryPolicy,
    SensorClient,
    ServiceUnavailableError,
)
from ingest.codec import now_us, parse_rfc3339, to_rfc3339
from ingest.features import EMBEDDINGS, LOGMEL_V1, WINDOW_EMBEDDERS, fleet_version
from ingest.playback import SPEC, find_recordings, total_duration_us
from ingest.sensor_replay import Embed, Totals, stream, upload

# Built-in kinds on the playback's window grid (1 s hop): computed here window by window.
LOCAL_KINDS = tuple(kind for kind, spec in EMBEDDINGS.items()
                    if (spec.window_s, spec.hop_s) == (SPEC.window_s, SPEC.hop_s))


def _start_us(text: str | None, default_us: int) -> int:
    if text is None:
        return default_us
    try:
        return parse_rfc3339(text)
    except (ValueError, OverflowError) as exc:
        raise SystemExit(_usage_error(f"--start: {exc}")) from None


def _usage_error(message: str) -> int:
    print(f"earshot sensor: {message}", file=sys.stderr)
    return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="earshot sensor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="Earshot API base URL, e.g. http://127.0.0.1:8000")
    common.add_argument("--sensor-id", required=True)
    common.add_argument("--token", default=os.environ.get("EARSHOT_SENSOR_TOKEN"),
                        help="the sensor's ingest token (est_...); default "
                             "$EARSHOT_SENSOR_TOKEN")
    common.add_argument("--start", help="RFC 3339 time of the first sample (default: so "
                                        "the recordings end now; now with --realtime)")
    common.add_argument("--retry-for", type=float, default=3600.0, metavar="SECONDS",
                        help="keep retrying one request this long before giving up")
    common.add_argument("--quiet", action="store_true", help="no progress bar")
    common.add_argument("path", type=Path, help="an audio file or a folder of them")
    s = sub.add_parser("stream", parents=[common], help="compute logmel-v1 locally and send "
                                                        "windows (HTTP or MQTT)")
    s.add_argument("--mqtt", metavar="URL", help="publish to this broker instead of HTTP: "
                                                 "mqtt://[user:password@]host:1883")
    s.add_argument("--realtime", action="store_true", help="pace windows at 1 per second")
    s.add_argument("--batch", type=int, default=None, help="windows per request "
                                                           "(default 1 realtime, else 50)")
    s.add_argument("--send-audio", action="store_true", help="also send the audio (FLAC, "
                   "over HTTP or MQTT) after the windows it covers; the server keeps it and checks "
                   "that it yields the windows sent")
    s.add_argument("--condition", help="the machine's operating condition while recording "
                   "(e.g. 1800rpm), declared with every batch of windows")
    s.add_argument("--audio-chunk-s", type=float, default=10.0, metavar="SECONDS",
                   help="with --send-audio: seconds of audio per request (default 10)")
    s.add_argument("--embedding", default=LOGMEL_V1, metavar="KIND",
                   help=f"{' or '.join(LOCAL_KINDS)} (default {LOGMEL_V1}), or fleet-v<N>: "
                        "the learned fleet embedding, its ONNX model downloaded from --url "
                        "(needs --url and --token); the sensor's kind")
    s.add_argument("--onnx-sha256", metavar="HEX", help="with --embedding fleet-v<N>: "
                   "refuse a model whose SHA-256 differs (pin the version you vetted)")
    s.add_argument("--onnx-cache", type=Path, metavar="DIR", help="keep the verified model "
                   "here (reused when --onnx-sha256 matches it)")
    u = sub.add_parser("upload", parents=[common], help="send recordings to the audio "
                                                        "endpoint, one request per file")
    u.add_argument("--baseline", action="store_true", help="mark them as normal operation")
    u.add_argument("--label", help="a class label for the recorded time ranges")
    u.add_argument("--condition", help="the machine's operating condition while recording "
                   "(e.g. 1800rpm): with --baseline, a few minutes teach a new normal")
    return parser


def _sender(args: argparse.Namespace, retry: RetryPolicy) -> SensorClient | MqttSender:
    if args.mqtt:
        return MqttSender(args.mqtt, args.sensor_id, retry=retry)
    return SensorClient(args.url, args.sensor_id, args.token, retry=retry)


def _check(args: argparse.Namespace) -> str | None:
    try:
        UUID(args.sensor_id)
    except ValueError:
        return f"--sensor-id {args.sensor_id!r} is not a sensor id (a UUID)"
    if args.command == "stream" and args.batch is not None and args.batch < 1:
        return "--batch must be at least 1"
    if args.command == "stream" and args.embedding not in LOCAL_KINDS:
        if fleet_version(args.embedding) is None:
            return f"--embedding {args.embedding!r}: {', '.join(LOCAL_KINDS)} or fleet-v<N>"
        if not args.url or not args.token:
            return "--embedding fleet-v<N> needs --url and --token to download its model"
    if args.command == "stream" and args.mqtt:
        return None
    if not args.url:
        return "--url is required" + (" (or --mqtt)" if args.command == "stream" else "")
    if not args.token:
        return "--token (or EARSHOT_SENSOR_TOKEN) is required"
    return None


def _embedder(args: argparse.Namespace) -> Embed:
    """A built-in kind's window embedder, or the fleet embedding's verified ONNX model in
    onnxruntime."""
    if args.embedding in LOCAL_KINDS:
        return WINDOW_EMBEDDERS[args.embedding]
    from ingest.fleet_onnx import OnnxEmbedder, download

    blob = download(args.url, args.token, args.embedding, expected_sha256=args.onnx_sha256,
                    cache_dir=args.onnx_cache)
    print(f"earshot sensor: {args.embedding} model verified ({len(blob)} bytes), embedding "
          "on this device with onnxruntime", file=sys.stderr)
    return OnnxEmbedder(blob).embed


def _run(args: argparse.Namespace) -> Totals:
    recordings = find_recordings(args.path)
    retry = RetryPolicy(give_up_after_s=args.retry_for)
    realtime = args.command == "stream" and args.realtime
    default = now_us() - (0 if realtime else total_duration_us(recordings))
    start_us = _start_us(args.start, default)
    # Said up front: re-running with this --start after a failure resumes without duplicates.
    print(f"earshot sensor: {len(recordings)} file(s) from --start {to_rfc3339(start_us)}",
          file=sys.stderr)
    if args.command == "upload":
        with SensorClient(args.url, args.sensor_id, args.token, retry=retry) as client:
            return upload(client, recordings, start_us, baseline=args.baseline,
                          label=args.label, progress=not args.quiet,
                          condition=args.condition)
    embed = _embedder(args)
    sender = _sender(args, retry)
    audio = AudioShipper(sender, args.audio_chunk_s) if args.send_audio else None
    try:
        totals = stream(sender, recordings, start_us, args.batch or (1 if realtime else 50),
                        realtime, progress=not args.quiet, audio=audio,
                        condition=args.condition, embed=embed)
    finally:
        sender.close()
    if audio is not None:
        print(f"earshot sensor: sent {audio.shipped.seconds:.1f} s of audio in "
              f"{audio.shipped.chunks} chunk(s)", file=sys.stderr)
    return totals


def main(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    problem = _check(args)
    if problem is not None:
        sys.exit(_usage_error(problem))
    started = time.monotonic()
    try:
        totals = _run(args)
    except ValueError as exc:  # unreadable path or audio, bad sensor id
        sys.exit(_usage_error(str(exc)))
    except (RejectedError, BrokerRefusedError) as exc:
        print(f"earshot sensor: refused: {exc}", file=sys.stderr)
        sys.exit(1)
    except ServiceUnavailableError as exc:
        print(f"earshot sensor: {exc}; re-run with the same --start to resume (windows "
              "already stored are skipped)", file=sys.stderr)
        sys.exit(3)
    summary = f"{args.command}: {totals.windows} windows in {time.monotonic() - started:.1f} s"
    if totals.counted:
        summary += f" (accepted {totals.accepted}, duplicates {totals.duplicates})"
    print(summary)

