"""Event-time alignment: the merged order does not depend on how records were fetched."""

from __future__ import annotations

import random

import pytest

from pipeline.ordering import UNTIMED, EventTimeAligner

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


def _ahead_of_b(head: int, follower: int, caught_up: bool = True) -> EventTimeAligner[str]:
    """Input a holds ``head`` then ``follower``; input b holds older records (clock ~0)."""
    aligner: EventTimeAligner[str] = EventTimeAligner(["a", "b"], max_idle_s=0.0,
                                                      outlier_gap=100)
    aligner.push("a", head, "head", now=0.0)
    aligner.push("a", follower, "follower", now=0.0)
    for time in range(10):
        aligner.push("b", time, f"b{time}", now=0.0)
    aligner.set_caught_up("a", caught_up)
    aligner.set_caught_up("b", True)
    return aligner


def test_a_bogus_clock_is_released_at_once_and_does_not_block_its_input() -> None:
    aligner = _ahead_of_b(head=10**9, follower=5)
    released = aligner.pop_ready(now=0.0, horizon=100)
    assert released[0] == ("a", "head")
    assert [item for _, item in released[1:]] == [
        "b0", "b1", "b2", "b3", "b4", "follower", "b5", "b6", "b7", "b8", "b9"]


def test_a_head_merely_ahead_of_the_clock_keeps_its_place() -> None:
    # 150 is beyond the horizon, but its follower is within outlier_gap of it: ordinary order.
    aligner = _ahead_of_b(head=150, follower=120)
    released = [item for _, item in aligner.pop_ready(now=0.0, horizon=100)]
    assert released == [f"b{time}" for time in range(10)] + ["head", "follower"]


def test_a_head_beyond_the_horizon_waits_for_its_followers_before_it_is_judged() -> None:
    aligner: EventTimeAligner[str] = EventTimeAligner(["a", "b"], max_idle_s=0.0,
                                                      outlier_gap=100)
    aligner.push("a", 10**9, "head", now=0.0)
    aligner.push("b", 1, "b1", now=0.0)
    aligner.set_caught_up("a", False)
    aligner.set_caught_up("b", True)
    assert aligner.pop_ready(now=10.0, horizon=100) == []
    aligner.push("a", 2, "follower", now=10.0)
    assert aligner.pop_ready(now=10.0, horizon=100)[0] == ("a", "head")


def test_records_after_until_wait_and_untimed_ones_do_not() -> None:
    aligner: EventTimeAligner[str] = EventTimeAligner(["a", "b"], max_idle_s=0.0)
    for name in ("a", "b"):
        aligner.set_caught_up(name, True)
    aligner.push("a", 5, "a5", now=0.0)
    aligner.push("b", UNTIMED, "refused", now=0.0)
    aligner.push("b", 9, "b9", now=0.0)
    assert aligner.head_time() == UNTIMED
    assert aligner.pop_ready(now=1.0, horizon=None) == [("b", "refused"), ("a", "a5"),
                                                        ("b", "b9")]
    aligner.push("a", 12, "a12", now=1.0)
    aligner.push("a", 20, "a20", now=1.0)
    assert aligner.pop_next(now=2.0, until=11) is None  # the consumer is not ready for 12
    assert aligner.pop_next(now=2.0, until=12) == ("a", "a12")
    assert aligner.head_time() == 20
