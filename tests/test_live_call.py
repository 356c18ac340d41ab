"""Live calls on the real models (Silero, Whisper tiny.en, the dialogue core, Piper): a scripted caller speaks
with Piper's voice over an 8 kHz line, and what the agent says is transcribed back and checked."""

import json

import numpy as np
import pytest
from conftest import words

from voiceagent.audio import Audio, phone_line
from voiceagent.conversation.caller import ScriptedCaller
from voiceagent.conversation.session import Engine
from voiceagent.dialogue.script import parse_line

pytestmark = pytest.mark.slow
LINE = 8000


@pytest.fixture
def engine(config, domain_file, tmp_path, fast_asr):
    config = {**config, "dialogue": {**config["dialogue"], "domain": str(domain_file)}}
    engine = Engine.from_config(config, records=tmp_path / "records", no_lm=True)
    engine.asr = fast_asr
    return engine


def heard(report, asr) -> list[str]:
    return words(asr.transcribe(Audio(report.heard, LINE)).text)


def test_an_order_status_call_is_heard_right(engine, voice, fast_asr):
    caller = ScriptedCaller(LINE, realtime=False)
    session = engine.open_call(LINE, inline=True, clock=caller.clock)
    lines = ["I'd like to check on my order.", "The number is one two three four.", "Bob Smith.", "That's all, bye!"]
    reports = caller.run(session, [parse_line(line) for line in lines], voice)
    answers = [heard(report, fast_asr) for report in reports]
    assert "number" in answers[0]
    assert {"1234"} <= set(answers[1]) or "one two three four" in " ".join(answers[1])
    assert "shipped" in answers[2] or "prepared" in answers[2]
    assert "goodbye" in answers[3]
    assert session.end_reason == "agent ended the call"
    record = json.loads((engine.records / f"{session.call_id}.json").read_text())
    assert record["slots"]["order_number"] == "1234" and record["slots"]["verified"]
    assert all(500 <= r.voice_to_voice_ms <= 2100 for r in reports)  # simulated time: endpointing alone


def test_barge_in_in_real_time_stops_the_agent_and_keeps_what_was_heard(engine, voice):
    """Threads and the wall clock: the caller cuts a long answer short 1.5 s in."""
    caller = ScriptedCaller(LINE, realtime=True)
    session = engine.open_call(LINE, clock=caller.clock)
    lines = ["How can I pay?", "INTERRUPT 1.5: Sorry, I want to cancel my order."]
    reports = caller.run(session, [parse_line(line) for line in lines], voice)
    assert session.wait(10)
    assert reports[1].agent_stopped_ms is not None and reports[1].agent_stopped_ms <= 300
    answer = [t for t in session.state.turns if t.role == "agent"][1]
    assert answer.interrupted and answer.text and answer.unheard
    assert answer.text.split()[0] == "We"  # "We accept Visa, ..." cut after a few words
    assert len(answer.text.split()) < 10
    callers = [t.text for t in session.state.turns if t.role == "caller"]
    assert "cancel" in callers[1].lower()
    assert "order number" in [t for t in session.state.turns if t.role == "agent"][2].text


def test_line_noise_and_silence_are_not_turns(engine, voice):
    """A caller who says nothing on a hissing, clicking line: no caller turns, a reprompt, then a hang-up."""
    engine.rules.reprompt_after_s, engine.rules.hang_up_after_s = 3.0, 6.5
    session = engine.open_call(LINE, inline=True)
    session.start()
    rng = np.random.default_rng(7)
    for tick in range(40 * 50):  # up to 40 s in 20 ms frames
        frame = rng.standard_normal(160).astype(np.float32) * 0.02  # hiss at about -34 dBFS
        if tick % 37 == 0:
            frame[:8] = 0.9  # a click
        session.feed(frame)
        session.play(160)
        if session.ended.is_set():
            break
    assert session.ended.is_set()
    assert [t.text for t in session.state.turns if t.role == "caller"] == []
    assert [t.text for t in session.state.turns if t.role == "agent"][1] == "Are you still there?"


def test_clipped_loud_speech_is_still_understood(engine, voice, fast_asr):
    caller = ScriptedCaller(LINE, realtime=False)
    session = engine.open_call(LINE, inline=True, clock=caller.clock)

    class ClippingVoice:
        def speak(self, text, rate):
            audio = phone_line(voice.speak(text, rate))
            return Audio(np.clip(audio.samples * 8, -0.5, 0.5), audio.sample_rate)

    caller.run(session, [parse_line("Where is my order?")], ClippingVoice())
    assert "order number" in [t for t in session.state.turns if t.role == "agent"][1].text
