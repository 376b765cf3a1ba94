"""Audacity label tracks as Audacity writes them (six decimals, tabs, point labels, the
extended format's frequency lines, Windows line ends) and the lines it cannot read."""

from __future__ import annotations

import pytest

from ingest.label_track import LabelTrackError, format_track, overlapping_pair, parse

# File > Export > Export Labels of a track with a region, a point and a spectral
# selection (Audacity 3.x writes the frequency line as '\' TAB low TAB high).
AUDACITY_EXPORT = ("0.000000\t4.820000\tdog_bark\n"
                   "6.250000\t6.250000\tclick\n"
                   "7.500000\t9.125000\train\n"
                   "\\\t125.000000\t3999.565430\n")


def test_reads_what_audacity_writes() -> None:
    found = parse(AUDACITY_EXPORT)
    assert [(x.line, x.start_s, x.end_s, x.label) for x in found] == [
        (1, 0.0, 4.82, "dog_bark"), (2, 6.25, 6.25, "click"), (3, 7.5, 9.125, "rain")]
    assert found[1].is_point and not found[0].is_point
    assert (found[2].low_hz, found[2].high_hz) == (125.0, 3999.56543)
    assert found[0].low_hz is None


def test_windows_line_ends_bom_blank_lines_and_old_forms() -> None:
    text = "\ufeff1.5\t2.5\tengine\r\n\r\n3,25\t4,0\tengine\r\n8.0\tknock\r\n\t10\t20\r\n"
    found = parse(text)
    assert [(x.line, x.start_s, x.end_s, x.label) for x in found] == [
        (1, 1.5, 2.5, "engine"), (3, 3.25, 4.0, "engine"), (4, 8.0, 8.0, "knock")]
    assert found[-1].low_hz == 10.0  # a bare-tab frequency line belongs to line 4


def test_format_round_trips() -> None:
    items = [(0.0, 4.82, "dog_bark"), (6.25, 6.25, "click")]
    text = format_track(items)
    assert text == "0.000000\t4.820000\tdog_bark\n6.250000\t6.250000\tclick\n"
    assert [(x.start_s, x.end_s, x.label) for x in parse(text)] == items


@pytest.mark.parametrize(("text", "line", "says"), [
    ("1.0\t2.0\tok\nabc\t2.0\tx\n", 2, "'abc' is not a number"),
    ("1.0\t2.0\tok\n\n5.0\t4.0\tx\n", 3, "before start"),
    ("1.0\t2.0\tdog bark\n", 1, "no spaces"),
    ("1.0\t2.0\t\n", 1, "label ''"),
    ("-1.0\t2.0\tx\n", 1, "between 0 and"),
    ("1.0\tinf\tx\n", 1, "finite"),
    ("1.0 2.0 x\n", 1, "tab-separated"),
    ("\\\t10\t20\n1.0\t2.0\tx\n", 1, "must follow a label line"),
    ("1.0\t2.0\tx\n\\\t10\t20\n\\\t10\t20\n", 3, "must follow a label line"),
    ("1.0\t2.0\tx\n\\\t10\n", 2, "two tab-separated values"),
    ("\n\n", 1, "no labels"),
])
def test_bad_lines_are_named(text: str, line: int, says: str) -> None:
    with pytest.raises(LabelTrackError) as caught:
        parse(text)
    assert caught.value.line == line
    assert f"line {line}:" in str(caught.value) and says in str(caught.value)


def test_overlapping_pair_ignores_touching_and_same_labels() -> None:
    assert overlapping_pair([(0, 2, "a", 1), (2, 3, "b", 2), (1, 2.5, "b", 3)]) == \
        ((0, 2, "a", 1), (1, 2.5, "b", 3))
    assert overlapping_pair([(0, 2, "a", 1), (2, 3, "b", 2), (1, 2, "a", 3)]) is None
