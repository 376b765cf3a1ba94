"""Audacity label tracks (File > Export > Export Labels, File > Import > Labels): read and
write the plain-text format annotators already use.

One label per line, tab-separated: ``start<TAB>end<TAB>label``, times in seconds from
the start of the recording (Audacity writes six decimals). A point label has
``start == end``. Audacity's extended format follows a label with a frequency line,
``\\<TAB>low_hz<TAB>high_hz`` (older files and some tools write it with a bare leading tab);
it belongs to the label above it. Audacity reads a line with only ``start<TAB>label`` as a
point label, and so does this parser. Blank lines are skipped; CRLF line ends and a UTF-8
byte-order mark (Windows editors) are accepted.

Errors name the 1-based line number, so a client can fix the file and send it again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

# The same rule as a label created through the JSON API (service.schemas.classification).
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
MAX_LINES = 100_000
MAX_SECONDS = 366 * 86_400.0  # a track longer than a year is a unit mistake


class LabelTrackError(ValueError):
    """A line of the track cannot be read; ``line`` is its 1-based number."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class TrackLabel:
    line: int
    start_s: float
    end_s: float
    label: str
    low_hz: float | None = None
    high_hz: float | None = None

    @property
    def is_point(self) -> bool:
        return self.end_s == self.start_s


def _seconds(text: str, line: int, what: str) -> float:
    # Audacity writes '.' but reads ',' too (locales with a decimal comma).
    try:
        value = float(text.strip().replace(",", "."))
    except ValueError:
        raise LabelTrackError(line, f"{what} {text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0 or value > MAX_SECONDS:
        raise LabelTrackError(line, f"{what} {text!r} must be a finite number of seconds "
                                    f"between 0 and {MAX_SECONDS:.0f}")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text.strip().replace(",", "."))
    except ValueError:
        return False
    return True


def _frequencies(fields: list[str], line: int) -> tuple[float, float]:
    if len(fields) != 2:
        raise LabelTrackError(line, "a frequency line needs two tab-separated values "
                                    "(low and high frequency in Hz)")
    low, high = (_seconds(f, line, "frequency") for f in fields)
    return low, high


def _label(fields: list[str], line: int) -> TrackLabel:
    if len(fields) < 2:
        raise LabelTrackError(line, "expected start<TAB>end<TAB>label (tab-separated)")
    start = _seconds(fields[0], line, "start")
    if len(fields) == 2 and not _is_number(fields[1]):
        end, name = start, fields[1]  # Audacity's 'start<TAB>label' point form
    else:
        end, name = _seconds(fields[1], line, "end"), "\t".join(fields[2:])
    if end < start:
        raise LabelTrackError(line, f"end {end:g} s is before start {start:g} s")
    name = name.strip()
    if not LABEL_RE.match(name):
        raise LabelTrackError(line, f"label {name!r} must be 1-100 characters: letters, "
                                    "digits, '_', '.', ':' or '-', starting with a letter or "
                                    "digit (no spaces: write dog_bark, not 'dog bark')")
    return TrackLabel(line, start, end, name)


def parse(text: str) -> list[TrackLabel]:
    """The labels of a track, in file order; LabelTrackError names the first bad line."""
    lines = text.removeprefix("\ufeff").splitlines()
    if len(lines) > MAX_LINES:
        raise LabelTrackError(MAX_LINES + 1, f"a track holds at most {MAX_LINES} lines")
    found: list[TrackLabel] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if raw.startswith(("\\\t", "\t")):
            if not found or found[-1].low_hz is not None:
                raise LabelTrackError(number, "a frequency line must follow a label line")
            low, high = _frequencies(raw.split("\t")[1:], number)
            prev = found[-1]
            found[-1] = TrackLabel(prev.line, prev.start_s, prev.end_s, prev.label, low, high)
            continue
        found.append(_label(raw.split("\t"), number))
    if not found:
        raise LabelTrackError(1, "the track holds no labels")
    return found


Span = tuple[float, float, str, int]  # start s, end s, label, line


def overlapping_pair(spans: list[Span]) -> tuple[Span, Span] | None:
    """Two spans of different labels that overlap (half-open: touching is fine), if any."""
    ordered = sorted(spans)
    open_: list[Span] = []
    for span in ordered:
        open_ = [o for o in open_ if o[1] > span[0]]
        for other in open_:
            if other[2] != span[2]:
                return other, span
        open_.append(span)
    return None


def format_track(items: Iterable[tuple[float, float, str]]) -> str:
    """Lines ``start<TAB>end<TAB>label`` with six decimals, as Audacity writes them."""
    return "".join(f"{start:.6f}\t{end:.6f}\t{label}\n" for start, end, label in items)
