"""The audio of live calls (both sides, in time, silenced where a card number was said), and the issue's test: a
card number spoken in a call appears in no file written, on a live call and in a batch, on the real models."""

import dataclasses
import json
import logging
import re
import threading
from contextlib import contextmanager

import numpy as np
import pytest
import soundfile
from conftest import words
from test_session import AGENT_HZ, PHRASES, ToneASR, ToneVoice, tone

from voiceagent.components.vad import create_vad
from voiceagent.conversation.caller import ScriptedCaller
from voiceagent.conversation.recording import MAX_LAG_S
from voiceagent.conversation.session import ConversationRules, Engine
from voiceagent.dialogue.agent import Agent
from voiceagent.dialogue.script import parse_line
from voiceagent.dialogue.slots import parse_digits

CARD_PHRASE = "my card number is 4111 1111 1111 1111"
CARD_HZ = 900.0


@contextmanager
def card_phrases():
    """The tone fakes learn a caller phrase with a card number in it."""
    PHRASES[CARD_PHRASE] = CARD_HZ
    try:
        yield
    finally:
        del PHRASES[CARD_PHRASE]


def tone_engine(domain, records, **options) -> Engine:
    """The real dialogue core and endpointer; tones for words (tests/test_session.py)."""
    vad = create_vad("energy", threshold_dbfs=-40.0)
    return Engine(vad, ToneASR(), Agent(domain), ToneVoice(), ConversationRules(), records, **options)


def call(engine, lines, rate):
    caller = ScriptedCaller(rate, realtime=False)
    session = engine.open_call(rate, inline=True, clock=caller.clock)
    reports = caller.run(session, [parse_line(line) for line in lines], ToneVoice())
    assert session.wait(5)
    return session, reports, caller.clock.now


def level_at(samples: np.ndarray, rate: int, hz: float) -> float:
    """The amplitude of one frequency in the samples."""
    t = np.arange(len(samples)) / rate
    return float(np.abs(np.sum(samples * np.exp(-2j * np.pi * hz * t))) * 2 / max(len(samples), 1))


def sounding(channel: np.ndarray, rate: int) -> np.ndarray:
    """Whether each 20 ms of a channel has sound."""
    frame = rate // 50
    frames = channel[: len(channel) // frame * frame].reshape(-1, frame)
    return np.sqrt(np.mean(frames**2, axis=1)) > 0.01


@pytest.mark.parametrize("rate", [8000, 16000])
def test_both_sides_of_a_call_are_recorded_in_time(domain, tmp_path, rate):
    engine = tone_engine(domain, tmp_path / "records")
    session, reports, duration = call(engine, ["where is my order", "bob smith"], rate)
    path = tmp_path / "records" / f"{session.call_id}.wav"
    info = soundfile.info(path)
    assert (info.channels, info.samplerate, info.subtype) == (2, rate, "PCM_16")
    audio, _ = soundfile.read(path)
    assert abs(len(audio) - duration * rate) <= rate // 50  # every frame of the line, both ways
    caller, agent = audio[:, 0], audio[:, 1]
    assert level_at(caller, rate, PHRASES["where is my order"]) > 0.001
    assert level_at(caller, rate, AGENT_HZ) < 1e-4 and level_at(agent, rate, PHRASES["bob smith"]) < 1e-4
    # In time: the agent's answer starts where the caller heard it, voice to voice after the caller's first turn.
    caller_on, agent_on = sounding(caller, rate), sounding(agent, rate)
    first_turn_end = np.flatnonzero(caller_on)[0] + np.flatnonzero(~caller_on[np.flatnonzero(caller_on)[0] :])[0]
    answer = first_turn_end + np.flatnonzero(agent_on[first_turn_end:])[0]
    assert (answer - first_turn_end) * 20 == pytest.approx(reports[0].voice_to_voice_ms, abs=40)
    record = json.loads((tmp_path / "records" / f"{session.call_id}.json").read_text())
    assert record["audio"] == f"{session.call_id}.wav"


def test_hanging_up_mid_reply_leaves_a_complete_file(domain, tmp_path):
    session = tone_engine(domain, tmp_path / "records").open_call(8000, inline=True)
    session.start()
    for _ in range(100):  # 2 s of the greeting
        session.feed(np.zeros(160, np.float32))
        session.play(160)
    session.close("caller hung up")
    assert session.wait(5)
    audio, rate = soundfile.read(tmp_path / "records" / f"{session.call_id}.wav")
    assert audio.shape == (16000, 2) and rate == 8000
    assert sounding(audio[:, 1], rate).mean() > 0.8 and not audio[:, 0].any()


def test_a_side_that_stops_is_padded_with_silence(domain, tmp_path):
    """A transport that sends the caller's audio but takes none of the agent's: the file stays in step."""
    session = tone_engine(domain, tmp_path / "records").open_call(8000, inline=True)
    for _ in range(150):  # 3 s
        session.feed(np.full(160, 0.001, np.float32))
        pending = session._recording._pending_length
        assert max(pending.values()) <= MAX_LAG_S * 8000 + 160  # what waits in memory stays bounded
    session.close()
    audio, _ = soundfile.read(tmp_path / "records" / f"{session.call_id}.wav")
    assert audio.shape == (24000, 2) and not audio[:, 1].any()


def test_a_card_said_after_the_callers_side_was_padded_is_silenced(domain, tmp_path):
    """The line brings none of the caller's audio for 3 s (a network stall) while the agent greets: the caller's
    side is padded, and the card read out after it is still silenced where it is in the file."""
    with card_phrases():
        caller = ScriptedCaller(8000, realtime=False)
        session = tone_engine(domain, tmp_path / "records").open_call(8000, inline=True, clock=caller.clock)
        session.start()
        for _ in range(150):
            session.play(160)
            caller.clock.now += 0.02
        lines = [CARD_PHRASE, "where is my order"]
        caller.run(session, [parse_line(line) for line in lines], ToneVoice(), greeting=False)
        assert session.wait(5)
    audio, rate = soundfile.read(tmp_path / "records" / f"{session.call_id}.wav")
    assert sounding(audio[: 2 * rate, 1], rate).mean() > 0.5 and not audio[: 2 * rate, 0].any()  # padded
    assert level_at(audio[:, 0], rate, CARD_HZ) < 1e-4
    assert level_at(audio[:, 0], rate, PHRASES["where is my order"]) > 0.001


def test_a_card_number_is_silenced_in_the_audio_and_redacted_in_the_record(domain, tmp_path):
    with card_phrases():
        engine = tone_engine(domain, tmp_path / "records")
        session, _, _ = call(engine, [CARD_PHRASE, "where is my order"], 8000)
    assert [t.text for t in session.state.turns if t.role == "caller"][0] == CARD_PHRASE  # the core heard it
    record = json.loads((tmp_path / "records" / f"{session.call_id}.json").read_text())
    callers = [t["text"] for t in record["turns"] if t["role"] == "caller"]
    assert callers == ["my card number is [card]", "where is my order"]
    audio, rate = soundfile.read(tmp_path / "records" / f"{session.call_id}.wav")
    assert level_at(audio[:, 0], rate, CARD_HZ) < 1e-4  # the card's turn is silence
    assert level_at(audio[:, 0], rate, PHRASES["where is my order"]) > 0.001  # the next turn is there
    assert "4111" not in (tmp_path / "records" / f"{session.call_id}.json").read_text()


def test_a_card_said_just_before_hanging_up_is_silenced_too(domain, tmp_path):
    with card_phrases():
        session = tone_engine(domain, tmp_path / "records").open_call(8000, inline=True)
        speech = tone(CARD_HZ, 2.0, rate=8000)
        for start in range(0, len(speech), 160):  # the caller is still speaking when the line drops
            session.feed(speech[start : start + 160])
            session.play(160)
        session.close()
    assert session.wait(5)
    audio, rate = soundfile.read(tmp_path / "records" / f"{session.call_id}.wav")
    assert level_at(audio[:, 0], rate, CARD_HZ) < 1e-4


class GatedASR(ToneASR):
    """Recognises only once let through: the listener falls behind the line."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()

    def decode(self, samples, language):
        assert self.gate.wait(10)
        return super().decode(samples, language)


def test_a_card_in_the_turn_before_a_hang_up_is_silenced(domain, tmp_path):
    """The caller reads out a card, says goodbye and hangs up before the card's turn was transcribed (the
    listener is behind): the hang-up and the newer turn do not let that turn's transcript be skipped."""
    with card_phrases():
        engine = tone_engine(domain, tmp_path / "records")
        engine.asr = GatedASR()
        session = engine.open_call(8000)  # threads: the listener runs behind the line
        speech = np.concatenate(
            [tone(CARD_HZ, 2.0, rate=8000), np.zeros(8000, np.float32), tone(PHRASES["goodbye"], 1.0, rate=8000)]
        )
        for start in range(0, len(speech), 160):
            session.feed(speech[start : start + 160])
            session.play(160)
        session.close()
        engine.asr.gate.set()
        assert session.wait(10)
    audio, rate = soundfile.read(tmp_path / "records" / f"{session.call_id}.wav")
    assert level_at(audio[:, 0], rate, CARD_HZ) < 1e-4
    assert level_at(audio[:, 0], rate, PHRASES["goodbye"]) > 0.001


class BrokenASR(ToneASR):
    def decode(self, samples, language):
        raise RuntimeError("the recogniser broke")


def test_a_crash_on_the_listener_thread_still_finishes_the_call(domain, tmp_path, caplog):
    engine = tone_engine(domain, tmp_path / "records")
    engine.asr = BrokenASR()
    session = engine.open_call(8000)
    speech = tone(PHRASES["where is my order"], 2.0, rate=8000)
    for start in range(0, len(speech), 160):
        session.feed(speech[start : start + 160])
        session.play(160)
    session.close()
    assert session.wait(5)  # the audio closed, the record written
    audio, _ = soundfile.read(tmp_path / "records" / f"{session.call_id}.wav")
    assert audio.shape == (len(speech), 2)
    assert "the recogniser broke" in caplog.text


def test_a_recording_that_will_not_open_leaks_no_thread(domain, tmp_path):
    records = tmp_path / "records"
    (records / "blocked.wav").mkdir(parents=True)  # a folder where the call's audio would go
    before = set(threading.enumerate())
    with pytest.raises(soundfile.LibsndfileError):
        tone_engine(domain, records).open_call(8000, call_id="blocked")
    assert set(threading.enumerate()) == before


def test_the_agent_reading_out_a_card_is_silenced_in_its_channel_only(domain, tmp_path):
    """The agent may read back a card the caller gave: the caller hears it, the call's audio does not keep it."""
    agent = Agent(dataclasses.replace(domain, greeting=f"{CARD_PHRASE}. How can I help?"))
    with card_phrases():
        engine = tone_engine(domain, tmp_path / "records")
        engine.agent = agent
        session = engine.open_call(8000, inline=True)
        session.start()
        heard = np.concatenate([session.play(160) for _ in range(300)])  # 6 s
        session.close()
    assert session.wait(5)
    audio, rate = soundfile.read(tmp_path / "records" / f"{session.call_id}.wav")
    assert level_at(heard, rate, CARD_HZ) > 0.01  # the caller heard the card read out
    assert level_at(audio[:, 1], rate, CARD_HZ) < 1e-4  # the recording did not keep it
    assert level_at(audio[:, 1], rate, AGENT_HZ) > 0.01  # the rest of the greeting is there


def test_the_snapshot_is_the_record_as_saved_redacted(domain, tmp_path):
    """What the API serves for a live call: the record as last saved, redacted, with or without a records folder;
    the call state changing afterwards does not change it."""
    with card_phrases():
        session = tone_engine(domain, None).open_call(8000, inline=True, call_id="+447700900123")
        first = session.snapshot()
        assert first["call_id"] == "+447700900123" and "turns" not in first  # before the first save
        caller = ScriptedCaller(8000, realtime=False)
        session.clock = caller.clock
        caller.run(session, [parse_line(CARD_PHRASE)], ToneVoice(), hang_up=False)
        snapshot = session.snapshot()
        callers = [t["text"] for t in snapshot["turns"] if t["role"] == "caller"]
        assert callers == ["my card number is [card]"] and snapshot["call_id"] == "+447700900123"
        session.state.turns.clear()
        assert session.snapshot() == snapshot
        session.close()
    assert session.snapshot()["end_reason"] == "caller hung up"


def test_no_audio_when_record_audio_is_off(domain, tmp_path):
    engine = tone_engine(domain, tmp_path / "records", record_audio=False)
    session, _, _ = call(engine, ["where is my order"], 8000)
    assert [p.name for p in (tmp_path / "records").iterdir()] == [f"{session.call_id}.json"]
    assert "audio" not in json.loads((tmp_path / "records" / f"{session.call_id}.json").read_text())


# The test, on the real models ----------------------------------------------------------------------------

#: A valid card number with varied digits (Whisper garbles "one one one one ..." into "111, 111"), as said.
CARD_DIGITS = "4539148803436467"
DIGIT_WORDS = "zero one two three four five six seven eight nine".split()
CARD_SAID = ", ".join(" ".join(DIGIT_WORDS[int(d)] for d in CARD_DIGITS[i : i + 4]) for i in range(0, 16, 4))
CARD_WORDS = " ".join(DIGIT_WORDS[int(d)] for d in CARD_DIGITS[:4])  # "four five three nine"


def heard_a_number(text: str) -> bool:
    """Whether a transcript has the card's first digits (as digits or words): there was a number to hide."""
    return CARD_DIGITS[:4] in re.sub(r"\D", "", text) or CARD_WORDS in " ".join(words(text))


def assert_no_card_in(folder, asr) -> list:
    """No file under ``folder`` holds the card number: text files in digits (with or without separators) or
    words, WAV files as Whisper hears them. The files looked at."""
    from voiceagent.audio import read_audio

    seen = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        seen.append(path)
        if path.suffix == ".wav":
            audio = read_audio(path)
            for index in range(audio.channels):
                heard = " ".join(words(asr.transcribe(audio.channel(index) if audio.channels > 1 else audio).text))
                assert not heard_a_number(heard), (path, heard)
            continue
        # Every digit in the file, said in words or not, run together: no seven of the card's in a row (a
        # partial transcript shows up to six while the caller reads it out, as much as PCI DSS lets be shown).
        text = path.read_text(encoding="utf-8", errors="replace")
        digits = parse_digits(text) or ""
        assert not any(CARD_DIGITS[i : i + 7] in digits for i in range(10)), path
    return seen


@pytest.mark.slow
def test_a_card_number_said_on_a_live_call_is_in_no_file(config, domain_file, tmp_path, voice, fast_asr):
    from voiceagent.cli import TalkView
    from voiceagent.privacy import redact_logs

    config = {**config, "dialogue": {**config["dialogue"], "domain": str(domain_file)}}
    written = tmp_path / "written"
    engine = Engine.from_config(config, records=written / "records", no_lm=True)
    engine.asr = fast_asr
    written.mkdir()
    log_handler = logging.FileHandler(written / "voiceagent.log")
    root = logging.getLogger()
    root.addHandler(log_handler)
    redact_logs(engine.redactor, root)
    events = logging.getLogger("voiceagent.test_recording")
    try:
        with open(written / "talk.txt", "w") as terminal:  # `voiceagent talk` with its output in a file
            view = TalkView(terminal, engine.redactor)

            def on_event(kind, data):
                view(kind, data)
                events.warning("event %s: %s", kind, data)  # everything the session says, into the log

            caller = ScriptedCaller(8000, realtime=False)
            session = engine.open_call(8000, inline=True, clock=caller.clock, on_event=on_event)
            lines = [f"My card number is {CARD_SAID}.", "Bye!"]
            caller.run(session, [parse_line(line) for line in lines], voice)
            assert session.wait(10)
    finally:
        root.removeHandler(log_handler)
        log_handler.close()
    said = [t.text for t in session.state.turns if t.role == "caller"][0]
    assert heard_a_number(said)  # Whisper heard the number
    record = json.loads((written / "records" / f"{session.call_id}.json").read_text())
    turn = [t["text"] for t in record["turns"] if t["role"] == "caller"][0]
    assert "[card]" in turn and "card number" in turn.lower()  # the rest of the turn is kept
    assert "[card]" in (written / "talk.txt").read_text() and "[card]" in (written / "voiceagent.log").read_text()
    seen = assert_no_card_in(written, fast_asr)
    assert {p.suffix for p in seen} >= {".json", ".wav", ".log", ".txt"}


@pytest.mark.slow
def test_a_card_number_in_a_recorded_call_is_in_no_batch_output(cli, tmp_path, voice, fast_asr):
    from voiceagent.audio import write_wav

    calls = tmp_path / "calls"
    calls.mkdir()
    said = f"Hello. My card number is {CARD_SAID}. Thank you."
    write_wav(calls / "card_call.wav", voice.speak(said))
    heard = fast_asr.transcribe(voice.speak(said)).text
    assert heard_a_number(heard)  # a number there to hide
    out = tmp_path / "out"
    code, _, err = cli("batch", calls, "--out", out, "--no-lm", "--quiet")
    assert code == 0, err
    transcript = json.loads((out / "card_call" / "transcript.json").read_text())
    assert "[card]" in " ".join(t["text"] for t in transcript["turns"])
    assert "card number" in " ".join(t["text"] for t in transcript["turns"]).lower()
    seen = assert_no_card_in(out, fast_asr)
    assert {p.name for p in seen} >= {"transcript.json", "transcript.srt", "results.jsonl", "reply_01.wav"}
