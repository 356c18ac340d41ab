"""The endpointer on plain booleans: 10 ms frames, speech or not."""

import pytest

from voiceagent.conversation.endpointer import Endpointer, EndpointRules, Event

FRAME = 0.01
RULES = EndpointRules(
    speech_start_s=0.2, start_gap_s=0.1, min_silence_s=0.5, max_silence_s=2.0, pause_step=0.25, pause_s=0.4,
    max_turn_s=10.0,
)  # fmt: skip


def feed(endpointer, pattern, frame=FRAME):
    """Feed (seconds, is_speech) pieces in frames; the events with the time each happened at."""
    events, now = [], 0.0
    for seconds, speech in pattern:
        for _ in range(round(seconds / frame)):
            now += frame
            if event := endpointer.feed(frame, speech):
                events.append((event, round(now, 2)))
    return events


def test_a_turn_starts_after_enough_speech_and_ends_after_the_minimum_silence():
    events = feed(Endpointer(RULES), [(0.5, False), (1.0, True), (1.0, False)])
    assert events == [(Event.SPEECH_START, 0.7), (Event.END_OF_TURN, 2.0)]


def test_short_bursts_do_not_start_a_turn():
    bursts = [(0.15, True), (0.3, False)] * 5  # coughs, clicks: each under 0.2 s, gaps over 0.1 s
    assert feed(Endpointer(RULES), bursts) == []


def test_short_gaps_inside_the_first_words_are_bridged():
    # "Bob ... Smith": two 0.12 s pieces of speech with a 0.05 s gap start a turn
    events = feed(Endpointer(RULES), [(0.12, True), (0.05, False), (0.12, True), (1.0, False)])
    assert events[0] == (Event.SPEECH_START, 0.25)


def test_each_resumed_pause_makes_it_wait_longer():
    endpointer = Endpointer(RULES)
    assert endpointer.silence_needed_s == pytest.approx(0.5)
    # a caller reading a number: speech, 0.45 s pauses (each shorter than the silence needed at that point)
    events = feed(endpointer, [(0.5, True), (0.45, False), (0.5, True), (0.45, False), (0.5, True)])
    assert events == [(Event.SPEECH_START, 0.2)]
    assert endpointer.silence_needed_s == pytest.approx(0.5 + 1.5 * 0.5)
    events = feed(endpointer, [(2.0, False)])
    assert events == [(Event.END_OF_TURN, 1.25)]  # 1.25 s of silence, not 0.5
    assert endpointer.silence_needed_s == pytest.approx(0.5)  # a new turn starts patient again


def test_expecting_more_waits_for_the_maximum_silence():
    endpointer = Endpointer(RULES)
    feed(endpointer, [(0.5, True)])
    endpointer.expect_more(True)  # "my order number is four five..."
    assert feed(endpointer, [(1.9, False)]) == []
    endpointer.expect_more(False)  # the transcript now looks complete
    assert feed(endpointer, [(0.1, False)]) == [(Event.END_OF_TURN, 0.01)]


def test_a_caller_who_never_stops_is_cut_at_the_maximum_turn():
    events = feed(Endpointer(RULES), [(25.0, True)])
    assert [event for event, _ in events] == [Event.SPEECH_START, Event.MAX_TURN] * 2 + [Event.SPEECH_START]
    assert [at for _, at in events] == pytest.approx([0.2, 10.0, 10.2, 20.0, 20.2], abs=0.02)


def test_frame_size_does_not_change_the_decisions():
    pattern = [(0.3, False), (0.8, True), (0.3, False), (0.6, True), (2.0, False)]

    at = [
        [(event, round(time, 1)) for event, time in feed(Endpointer(RULES), pattern, frame)] for frame in (0.01, 0.02)
    ]
    assert at[0] == at[1] == [(Event.SPEECH_START, 0.5), (Event.END_OF_TURN, 2.5)]
