"""When a caller's turn starts and ends: a state machine fed with (frame duration, is-speech), nothing else.

A turn starts after ``speech_start_s`` of speech in a row, gaps under ``start_gap_s`` bridged (a click or a
cough is shorter). It ends after a silence
whose length adapts between ``min_silence_s`` and ``max_silence_s``: the endpointer starts patient at the minimum,
and each pause the caller resumes from within a turn (a caller reading out a number, thinking mid-sentence) makes
it wait longer for the rest of that turn. The conversation can also ask for patience from what the caller has said
so far (``expect_more``): a turn that stops on "and" or halfway through an order number is not over. A turn
that runs past ``max_turn_s`` ends there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass
class EndpointRules:
    """Turn-taking thresholds, in seconds ([conversation.endpoint] in the config)."""

    #: Speech in a row before a turn starts (shorter bursts are clicks, coughs, line noise).
    speech_start_s: float = 0.2
    #: Gaps shorter than this do not break that run ("Bob ... Smith").
    start_gap_s: float = 0.1
    #: Silence that ends a turn when nothing suggests the caller will go on.
    min_silence_s: float = 0.5
    #: The longest silence the endpointer waits for when it expects more.
    max_silence_s: float = 2.0
    #: Each resumed pause moves the silence needed this far from min towards max (0..1).
    pause_step: float = 0.25
    #: A silence this long inside a turn counts as a pause the caller resumed from.
    pause_s: float = 0.4
    #: Audio kept from before the speech start, so the first syllable is not clipped.
    pre_roll_s: float = 0.5
    #: A turn ends here whatever the caller does (a caller who never stops talking).
    max_turn_s: float = 30.0


class Event(Enum):
    SPEECH_START = "speech_start"
    END_OF_TURN = "end_of_turn"
    MAX_TURN = "max_turn"


class Endpointer:
    """One call's turn detection. ``feed`` returns the event a frame causes, if any."""

    def __init__(self, rules: EndpointRules | None = None):
        self.rules = rules or EndpointRules()
        self.in_turn = False
        #: Speech in a row so far (before a turn: towards its start).
        self.speech_run_s = 0.0
        self._gap_s = 0.0
        #: Silence in a row inside a turn.
        self.silence_s = 0.0
        #: Length of the current turn, from its first speech frame.
        self.turn_s = 0.0
        self._patience = 0.0
        self._expect_more = False

    @property
    def silence_needed_s(self) -> float:
        """The silence that ends the current turn now."""
        patience = 1.0 if self._expect_more else min(1.0, self._patience)
        rules = self.rules
        return rules.min_silence_s + (rules.max_silence_s - rules.min_silence_s) * patience

    def expect_more(self, yes: bool) -> None:
        """Whether what the caller said so far sounds unfinished (wait the longest silence while it does)."""
        self._expect_more = yes

    def feed(self, frame_s: float, is_speech: bool) -> Event | None:
        rules = self.rules
        if not self.in_turn:
            if is_speech:
                self.speech_run_s += frame_s
                self._gap_s = 0.0
            else:
                self._gap_s += frame_s
                if self._gap_s >= rules.start_gap_s:
                    self.speech_run_s = 0.0
            if self.speech_run_s >= rules.speech_start_s:
                self.in_turn = True
                self.turn_s = self.speech_run_s
                self.silence_s = 0.0
                return Event.SPEECH_START
            return None
        self.turn_s += frame_s
        if is_speech:
            if self.silence_s >= rules.pause_s:
                self._patience += rules.pause_step
            self.silence_s = 0.0
        else:
            self.silence_s += frame_s
        if self.turn_s >= rules.max_turn_s:
            self._end_turn()
            return Event.MAX_TURN
        if self.silence_s >= self.silence_needed_s:
            self._end_turn()
            return Event.END_OF_TURN
        return None

    def _end_turn(self) -> None:
        self.in_turn = False
        self.speech_run_s = 0.0
        self._gap_s = 0.0
        self._patience = 0.0
        self._expect_more = False
