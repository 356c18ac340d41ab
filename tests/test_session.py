"""The conversation engine's logic, in simulated time: turn-taking, barge-in, echo, timers, keys, hang-ups.

The dialogue core and the endpointer are the real ones; the caller's words and the agent's voice are tones (a
word list maps each caller phrase to a pitch, which the fake recogniser maps back), so every test is exact and
fast. tests/test_live_call.py runs the same engine on the real models.
"""

import json

import numpy as np
import pytest

from voiceagent.audio import Audio
from voiceagent.components.asr import ASR, Segment
from voiceagent.components.tts import TTS
from voiceagent.components.vad import create_vad
from voiceagent.conversation.caller import ScriptedCaller
from voiceagent.conversation.session import ConversationRules, Engine
from voiceagent.dialogue.agent import Agent
from voiceagent.dialogue.script import parse_line

RATE = 16000
#: The caller's phrases and the pitch each is "spoken" at; the agent speaks at AGENT_HZ, 0.3 s a word.
PHRASES = {
    "where is my order": 300.0,
    "the number is one two three four": 400.0,
    "bob smith": 500.0,
    "uh-huh": 600.0,
    "i want to speak to a person": 700.0,
    "goodbye": 800.0,
}
AGENT_HZ = 2000.0
LEVEL = 0.3


def tone(hz: float, seconds: float, rate: int = RATE, level: float = LEVEL) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)


class ToneVoice(TTS):
    """Caller phrases at their pitch for 0.25 s a word; anything else at AGENT_HZ for 0.3 s a word."""

    sample_rate = RATE

    def synthesize_sentence(self, sentence: str) -> Audio:
        key = sentence.lower().strip(".!?")
        if key in PHRASES:
            return Audio(tone(PHRASES[key], 0.25 * len(key.split())), RATE)
        return Audio(tone(AGENT_HZ, 0.3 * len(sentence.split())), RATE)


class ToneASR(ASR):
    """Hears the phrase whose pitch is strongest in the audio, or nothing."""

    def __init__(self):
        super().__init__(speech_gate=None)
        self.calls = 0

    def decode(self, samples, language):
        self.calls += 1
        where = np.flatnonzero(np.abs(samples) > 0.01)
        loud = samples[where[0] : where[-1] + 1] if len(where) else samples[:0]
        if len(loud) < RATE // 10:
            return [], "en"
        spectrum = np.abs(np.fft.rfft(loud))
        peak = np.fft.rfftfreq(len(loud), 1 / RATE)[np.argmax(spectrum)]
        phrase, hz = min(PHRASES.items(), key=lambda item: abs(item[1] - peak))
        if abs(hz - peak) > 30:
            return [], "en"
        return [Segment(0.0, len(samples) / RATE, phrase, -0.1, 0.01)], "en"


@pytest.fixture
def engine(domain, tmp_path):
    def make(**rules):
        vad = create_vad("energy", threshold_dbfs=-40.0)
        return Engine(vad, ToneASR(), Agent(domain), ToneVoice(), ConversationRules(**rules), tmp_path / "records")

    return make


def call(engine, lines, rate=RATE, **options):
    """Play script lines into a new inline session: (session, reports)."""
    caller = ScriptedCaller(rate, realtime=False)
    session = engine.open_call(rate, inline=True, clock=caller.clock, **options)
    reports = caller.run(session, [parse_line(line) for line in lines], ToneVoice())
    return session, reports


def agent_turns(session):
    return [t for t in session.state.turns if t.role == "agent"]


def test_a_call_is_answered_turn_by_turn_and_recorded(engine):
    session, reports = call(engine(), ["where is my order", "the number is one two three four", "bob smith"])
    callers = [t.text for t in session.state.turns if t.role == "caller"]
    assert callers == ["where is my order", "the number is one two three four", "bob smith"]
    replies = agent_turns(session)
    assert "order number" in replies[1].text and "one two three four" in replies[2].text
    assert "hasn't shipped" in replies[3].text
    # voice to voice: the endpointer's silence (0.5 s) and nothing else (inline: no compute time)
    assert [r.voice_to_voice_ms for r in reports] == [pytest.approx(500, abs=40)] * 3
    assert replies[1].latency["voice_to_voice_ms"] == pytest.approx(500, abs=40)
    assert replies[1].latency["transcript_ms"] == replies[1].latency["endpoint_ms"]  # early transcript ready
    record = json.loads((session.engine.records / f"{session.call_id}.json").read_text())
    assert record["end_reason"] == "caller hung up" and len(record["turns"]) == 7


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_any_line_rate(engine, rate):
    session, reports = call(engine(), ["where is my order"], rate=rate)
    assert "order number" in agent_turns(session)[1].text
    assert abs(len(reports[0].heard) / rate - 30) < 30  # heard at the line's rate


def test_barge_in_stops_playback_at_once_and_keeps_what_was_heard(engine):
    session, reports = call(engine(), ["INTERRUPT 2.0: i want to speak to a person"])
    stopped = reports[0].agent_stopped_ms
    assert stopped is not None and stopped <= 300
    greeting = agent_turns(session)[0]
    assert greeting.interrupted
    full = session.engine.agent.domain.greeting
    assert full.startswith(greeting.text) and 0 < len(greeting.text) < len(full)
    assert greeting.unheard and full.endswith(greeting.unheard)
    # 2.0 s of 0.3 s words is about 6-7 words heard
    assert 5 <= len(greeting.text.split()) <= 8
    assert session.state.actions[-1]["type"] == "transfer"  # and the interruption itself was answered


def test_a_backchannel_pauses_the_agent_which_then_goes_on(engine):
    session, reports = call(engine(), ["INTERRUPT 1.0: uh-huh", "goodbye"])
    greeting = agent_turns(session)[0]
    assert not greeting.interrupted and greeting.text == session.engine.agent.domain.greeting
    assert [t.text for t in session.state.turns if t.role == "caller"] == ["goodbye"]
    # the whole greeting was played: every word's 0.3 s, paused but not cut
    spoken = sum(np.count_nonzero(r.heard) for r in reports) / RATE
    words = len(greeting.text.split()) + len(agent_turns(session)[1].text.split())
    assert spoken == pytest.approx(0.3 * words - 1.0, abs=0.4)  # minus the second before the caller's turn


def echo_call(engine, echo_gain, loud_caller_at=None, **rules):
    """The agent's greeting leaks back into the microphone at ``echo_gain``; optionally the caller speaks up."""
    session = engine(**rules).open_call(RATE, inline=True)
    session.pauses = 0

    def count(kind, data):
        session.pauses += kind == "paused"

    session.on_event = count
    session.start()
    frame = RATE // 50
    out = np.zeros(frame, np.float32)
    caller = tone(PHRASES["i want to speak to a person"], 1.5, level=0.3)
    for tick in range(500):  # 10 s
        mic = echo_gain * out
        if loud_caller_at is not None and 0 <= tick - loud_caller_at < len(caller) // frame:
            start = (tick - loud_caller_at) * frame
            mic = mic + caller[start : start + frame]
        session.feed(mic)
        out = session.play(frame)
    return session


def test_the_agents_own_echo_does_not_interrupt_it(engine):
    guarded = echo_call(engine, 0.5, echo_guard="guard")
    assert not agent_turns(guarded)[0].interrupted
    assert len(guarded.state.turns) == 1 and guarded.pauses == 0
    # without the guard the same echo is taken for the caller's voice: the agent keeps stopping to listen
    assert echo_call(engine, 0.5, echo_guard="off").pauses > 0


def test_a_caller_louder_than_the_echo_still_interrupts(engine):
    session = echo_call(engine, 0.1, loud_caller_at=100, echo_guard="guard")
    assert agent_turns(session)[0].interrupted
    assert session.state.actions[-1]["type"] == "transfer"


def test_half_duplex_does_not_listen_while_the_agent_speaks(engine):
    session = echo_call(engine, 0.1, loud_caller_at=100, echo_guard="half-duplex")
    assert not agent_turns(session)[0].interrupted


def test_silence_gets_a_reprompt_then_a_hang_up(engine):
    session, _ = call(engine(reprompt_after_s=3.0, hang_up_after_s=7.0), [""] * 4)
    said = [t.text for t in agent_turns(session)]
    assert said[1:] == ["Are you still there?", "Are you still there?", session.rules.silent_goodbye]
    assert session.ended.is_set() and session.end_reason == "agent ended the call"


def test_a_caller_who_never_stops_is_answered_at_the_maximum_turn(engine, domain):
    from voiceagent.conversation.endpointer import EndpointRules

    eng = engine(endpoint=EndpointRules(max_turn_s=4.0))
    session = eng.open_call(RATE, inline=True)
    events = []
    session.on_event = lambda kind, data: events.append(kind)
    speech = tone(PHRASES["where is my order"], 10.0)
    for start in range(0, len(speech), 320):
        session.feed(speech[start : start + 320])
        session.play(320)
    assert "max_turn" in events
    assert [t.text for t in session.state.turns if t.role == "caller"][0] == "where is my order"


def test_keypad_digits_reach_the_dialogue_core(engine):
    session, _ = call(engine(), ["where is my order", "DTMF:1234#"])
    assert session.state.turns[-2].dtmf == "1234#"
    assert "one two three four" in agent_turns(session)[-1].text


def test_keys_without_hash_are_sent_after_a_pause(engine):
    session, _ = call(engine(dtmf_timeout_s=1.0), ["where is my order", "DTMF:1234"])
    assert session.state.turns[-2].dtmf == "1234#"


def test_hanging_up_mid_reply_saves_what_was_heard(engine):
    session = engine().open_call(RATE, inline=True)
    session.start()
    for _ in range(100):  # 2 s of the greeting
        session.feed(np.zeros(320, np.float32))
        session.play(320)
    session.close("caller hung up")
    assert session.ended.is_set()
    record = json.loads((session.engine.records / f"{session.call_id}.json").read_text())
    assert record["end_reason"] == "caller hung up"
    greeting = record["turns"][0]
    assert greeting["interrupted"] and 5 <= len(greeting["text"].split()) <= 8
    session.feed(np.zeros(320, np.float32))  # a late frame after the hang-up is ignored
    assert not session.play(320).any()


@pytest.mark.parametrize("seed", [1, 2])
def test_frames_late_or_in_bursts_give_the_same_call(engine, seed):
    """A jittery transport: chunks of 1 ms to 200 ms, output taken in other sizes, same turns as steady 20 ms."""
    rng = np.random.default_rng(seed)
    steady, _ = call(engine(), ["where is my order", "bob smith"])
    session = engine().open_call(RATE, inline=True)
    session.start()
    line = np.concatenate(
        [np.zeros(RATE * 12), tone(300.0, 1.0), np.zeros(RATE * 10), tone(500.0, 0.5), np.zeros(RATE * 10)]
    ).astype(np.float32)
    position = 0
    while position < len(line):
        size = int(rng.integers(16, 3200))
        session.feed(line[position : position + size])
        session.play(int(rng.integers(16, 3200)))
        position += size
    assert [t.text for t in session.state.turns] == [t.text for t in steady.state.turns]


def test_a_bad_frame_is_a_clear_error_and_the_call_goes_on(engine):
    session = engine().open_call(RATE, inline=True)
    with pytest.raises(ValueError):
        session.feed(np.array([[1.0, 2.0], [3.0]], dtype=object))
    session.feed(np.zeros(320, np.float32))
    assert not session.ended.is_set()
