"""Event-time alignment: the merged order does not depend on how records were fetched."""

from __future__ import annotations

import random

import pytest

from pipeline.ordering import EventTimeAligner

SOURCES = ["transactions", "repayments", "labels"]


def _streams(rng: random.Random) -> dict[str, list[int]]:
    return {name: sorted(rng.randrange(10_000) for _ in range(rng.randrange(0, 60)))
            for name in SOURCES}


@pytest.mark.parametrize("seed", range(20))
def test_merge_is_independent_of_fetch_chunking(seed: int) -> None:
    rng = random.Random(seed)
    streams = _streams(rng)
    expected = sorted(
        ((time, SOURCES.index(name), index) for name in SOURCES
         for index, time in enumerate(streams[name])),
    )
    aligner: EventTimeAligner[int] = EventTimeAligner(SOURCES, max_idle_s=1.0)
    positions = dict.fromkeys(SOURCES, 0)
    merged: list[tuple[int, int, int]] = []
    clock = 0.0
    while any(positions[name] < len(streams[name]) for name in SOURCES) or aligner.buffered():
        name = rng.choice(SOURCES)
        chunk = rng.randrange(0, 7)
        start = positions[name]
        for index in range(start, min(start + chunk, len(streams[name]))):
            aligner.push(name, streams[name][index], index, now=clock)
        positions[name] = min(start + chunk, len(streams[name]))
        for source in SOURCES:  # what the high watermark of each fetch tells
            aligner.set_caught_up(source, positions[source] == len(streams[source]))
        for source, index in aligner.pop_ready(now=clock):
            merged.append((streams[source][index], SOURCES.index(source), index))
        clock += 0.01  # far below max_idle: only the data decides
    assert merged == expected


def test_a_silent_input_is_waited_for_max_idle_after_each_record_arrives() -> None:
    aligner: EventTimeAligner[str] = EventTimeAligner(["a", "b"], max_idle_s=1.0)
    aligner.set_caught_up("b", True)
    aligner.push("a", 1, "x", now=0.0)
    assert aligner.pop_ready(now=0.5) == []
    assert aligner.pop_ready(now=1.0) == [("a", "x")]
    # A record arriving later waits its own max_idle: b may be a moment behind a.
    aligner.push("a", 2, "y", now=5.0)
    assert aligner.pop_ready(now=5.5) == []
    aligner.push("b", 1, "late-but-older", now=5.6)
    assert aligner.pop_ready(now=5.6) == [("b", "late-but-older")]
    assert aligner.pop_ready(now=6.0) == [("a", "y")]


def test_an_input_known_to_have_more_is_waited_for_indefinitely() -> None:
    aligner: EventTimeAligner[str] = EventTimeAligner(["a", "b"], max_idle_s=1.0)
    aligner.set_caught_up("b", False)
    aligner.push("a", 1, "x", now=0.0)
    assert aligner.pop_ready(now=3600.0) == []


def test_ties_go_to_the_first_listed_source() -> None:
    aligner: EventTimeAligner[str] = EventTimeAligner(["a", "b"], max_idle_s=0.0)
    aligner.push("b", 5, "b", now=0.0)
    aligner.push("a", 5, "a", now=0.0)
    aligner.set_caught_up("a", True)
    aligner.set_caught_up("b", True)
    assert aligner.pop_ready(now=0.0) == [("a", "a"), ("b", "b")]
