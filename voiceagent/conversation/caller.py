"""A scripted caller: plays the turns of a call into a session as a phone line would, and reports what happened.

It is the transport and the caller at once: every ``frame_s`` it feeds the session one frame of the caller's
audio (speech or silence) and takes one frame of the agent's. In real time it keeps to the wall clock, so the
latencies it measures are the ones a caller would hear; with ``realtime=False`` time is simulated (the session
runs inline, so a 10-turn call takes seconds and depends on the audio alone).

Each turn waits for the agent to finish speaking (or interrupts it on cue), speaks, and measures voice-to-voice
latency: from the end of the caller's speech to the first sound from the agent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from voiceagent.audio import Audio
from voiceagent.dialogue.script import CallerTurn

#: Silence after the agent finished before the caller speaks.
PAUSE_S = 0.6


@dataclass
class TurnReport:
    said: str
    #: End of the caller's speech (or last key) to the agent's first sound; None if it never answered.
    voice_to_voice_ms: float | None = None
    #: Barge-in: start of the caller's speech to the agent going quiet.
    agent_stopped_ms: float | None = None
    #: What the caller heard from the agent after this turn, until the next one (at the line's rate).
    heard: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


class SimulatedClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedCaller:
    def __init__(self, sample_rate: int, realtime: bool = True, frame_s: float = 0.02, answer_timeout_s: float = 20.0):
        self.sample_rate = sample_rate
        self.realtime = realtime
        self.frame = int(round(frame_s * sample_rate))
        self.frame_s = self.frame / sample_rate
        self.answer_timeout_s = answer_timeout_s
        #: The clock to give the session: the wall clock, or the caller's simulated one.
        self.clock = time.monotonic if realtime else SimulatedClock()
        self._next_tick = 0.0
        self._session = None
        self._heard: list[np.ndarray] = []
        self._speaking = False  # whether the agent's last frame had sound

    def run(
        self, session, turns: list[CallerTurn], voice, greeting: bool = True, hang_up: bool = True
    ) -> list[TurnReport]:
        """Play ``turns`` into ``session`` (started here), their words spoken by ``voice`` (a TTS); the call is
        hung up at the end unless the agent did."""
        spoken = {t.text: voice.speak(t.text, self.sample_rate).trim() for t in turns if t.text}
        self._session = session
        self._next_tick = time.monotonic()
        # A reply the next turn interrupts is listened to only until it starts.
        to_the_end = [turn.interrupt_after_s is None for turn in turns[1:]] + [True]
        if greeting:
            session.start()
            self._listen_to_reply(to_the_end=not turns or turns[0].interrupt_after_s is None)
        reports = []
        for turn, listen_to_the_end in zip(turns, to_the_end):
            if session.ended.is_set():
                break
            reports.append(self._turn(turn, spoken.get(turn.text), listen_to_the_end))
        if hang_up and not session.ended.is_set():
            session.close("caller hung up")
        return reports

    def _turn(self, turn: CallerTurn, audio: Audio | None, listen_to_the_end: bool) -> TurnReport:
        report = TurnReport(turn.text or turn.dtmf or "")
        if turn.interrupt_after_s is None:
            self._wait_quiet(PAUSE_S)
        else:
            self._wait_agent_speaking(turn.interrupt_after_s)
        self._heard = []
        started = self.clock()
        if audio is not None:
            samples = audio.samples
            for start in range(0, len(samples), self.frame):
                frame = samples[start : start + self.frame]
                self._tick(np.pad(frame, (0, self.frame - len(frame))))
                if report.agent_stopped_ms is None and turn.interrupt_after_s is not None and not self._speaking:
                    report.agent_stopped_ms = round((self.clock() - started) * 1000, 1)
        for key in turn.dtmf or "":
            self._session.dtmf(key)
            for _ in range(5):  # 100 ms a key
                self._tick()
        ended = self.clock()
        report.voice_to_voice_ms = self._listen_to_reply(ended, listen_to_the_end)
        report.heard = np.concatenate(self._heard) if self._heard else np.zeros(0, np.float32)
        return report

    def _listen_to_reply(self, since: float | None = None, to_the_end: bool = True) -> float | None:
        """Silence from the caller until the agent has answered and finished (or only started, unless
        ``to_the_end``); ms from ``since`` to its first sound."""
        first = None
        deadline = self.clock() + self.answer_timeout_s
        while not self._session.ended.is_set() and self.clock() < deadline:
            self._tick()
            if self._speaking and first is None:
                first = self.clock() - self.frame_s  # the frame started sounding one frame ago
            if first is not None and (not to_the_end or not self._session.busy):
                break
        if first is None or since is None:
            return None
        return round((first - since) * 1000, 1)

    def _wait_quiet(self, seconds: float) -> None:
        quiet = 0.0
        while quiet < seconds and not self._session.ended.is_set():
            self._tick()
            quiet = 0.0 if self._session.busy else quiet + self.frame_s

    def _wait_agent_speaking(self, seconds: float) -> None:
        spoken = 0.0
        deadline = self.clock() + self.answer_timeout_s
        while spoken < seconds and not self._session.ended.is_set() and self.clock() < deadline:
            self._tick()
            spoken = spoken + self.frame_s if self._speaking or spoken else 0.0

    def _tick(self, caller: np.ndarray | None = None) -> None:
        """One frame of the line, both ways."""
        session = self._session
        session.feed(np.zeros(self.frame, np.float32) if caller is None else caller)
        out = session.play(self.frame)
        self._speaking = bool(np.any(out != 0))
        self._heard.append(out)
        if self.realtime:
            self._next_tick += self.frame_s
            time.sleep(max(0.0, self._next_tick - time.monotonic()))
        else:
            self.clock.now += self.frame_s
