"""`voiceagent talk` on real audio devices: a private PulseAudio server with two null sinks stands in for the
sound card. The caller speaks into ``caller_in`` (whose monitor is the agent's microphone); the agent speaks
into ``agent_out``, whose monitor the test records and transcribes back, hearing what a caller would hear.

The fast tests here need neither PulseAudio nor a sound card: device selection is pure logic.
"""

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import DETERMINISTIC, ROOT, heard_words
from servers import PulseAudio

from voiceagent.audio import Audio, write_wav
from voiceagent.cli import TalkView
from voiceagent.errors import VoiceAgentError
from voiceagent.transports.local import AudioDevice, find_device, format_devices

# Device selection ------------------------------------------------------------------------------------------------

DEVICES = [
    AudioDevice(0, "HDA Intel PCH: ALC257 Analog (hw:0,0)", 2, 2, 48000, "ALSA"),
    AudioDevice(1, "HDA Intel PCH: HDMI 0 (hw:0,3)", 0, 8, 44100, "ALSA"),
    AudioDevice(2, "USB Headset: Audio (hw:1,0)", 1, 2, 44100, "ALSA"),
    AudioDevice(3, "pulse", 32, 32, 44100, "ALSA"),
    AudioDevice(4, "default", 32, 32, 44100, "ALSA", default_input=True, default_output=True),
]


def test_devices_are_found_by_number_name_or_part_of_a_name():
    assert find_device(DEVICES, None, "input").name == "default"
    assert find_device(DEVICES, 2, "input").index == 2
    assert find_device(DEVICES, "0", "output").index == 0
    assert find_device(DEVICES, "PULSE", "input").index == 3
    assert find_device(DEVICES, "headset", "output").index == 2
    assert find_device(DEVICES, "hdmi", "output").index == 1


def test_the_exact_name_wins_over_parts_of_names():
    devices = [AudioDevice(0, "pulse monitor", 2, 0, 44100, "ALSA"), AudioDevice(1, "pulse", 2, 2, 44100, "ALSA")]
    assert find_device(devices, "pulse", "input").index == 1


def test_the_same_name_under_several_host_apis_is_one_device():
    devices = [AudioDevice(i, "Microphone (USB)", 1, 0, 48000, api) for i, api in enumerate(["MME", "WASAPI"])]
    assert find_device(devices, "usb", "input").index == 0


@pytest.mark.parametrize(
    ("wanted", "kind", "message"),
    [
        ("nonexistent mic", "input", "no audio device is called 'nonexistent mic'"),
        (9, "input", "no audio device number 9"),
        ("hdmi", "input", "audio device 1 (HDA Intel PCH: HDMI 0 (hw:0,3)) has no input channels"),
        ("hda intel", "output", "several output devices match 'hda intel': 0 (HDA Intel PCH: ALC257"),
    ],
)
def test_a_device_that_cannot_serve_is_a_clear_error(wanted, kind, message):
    with pytest.raises(VoiceAgentError, match="--list-devices|give its number") as error:
        find_device(DEVICES, wanted, kind)
    assert message in str(error.value)


def test_no_default_device_says_how_to_choose_one():
    with pytest.raises(VoiceAgentError, match="no default output device: choose one with --output-device"):
        find_device([AudioDevice(0, "mic", 1, 0, 16000, "ALSA")], None, "output")


def test_the_device_table_marks_the_defaults():
    table = format_devices(DEVICES).splitlines()
    assert table[0].split() == ["index", "name", "in", "out", "rate", "host", "API"]
    assert table[-1].split()[:3] == ["><", "4", "default"]
    assert table[2].split()[-4:] == ["0", "8", "44100", "ALSA"]
    assert format_devices([]) == "no audio devices found"


class FakePortAudio:
    def devices(self):
        return DEVICES

    def close(self):
        pass


def test_talk_lists_devices_and_names_a_missing_one_before_loading_anything(cli, monkeypatch):
    monkeypatch.setattr("voiceagent.transports.local._binding", lambda backend: FakePortAudio())
    code, out, err = cli("talk", "--list-devices")
    assert code == 0 and out == format_devices(DEVICES) + "\n"
    code, out, err = cli("talk", "--input-device", "no such microphone")
    assert code == 2
    assert "no audio device is called 'no such microphone'" in err


def test_the_terminal_view_shows_each_line_and_the_latency():
    line = TalkView.line
    assert line("caller", {"text": "Bob Smith."}) == "caller: Bob Smith."
    assert line("caller", {"dtmf": "12#"}) == "caller: [keys 12#]"
    assert line("interrupted", {"heard": "Order one two"}) == "[interrupted] heard: Order one two"
    # Each mark in ms from the end of the caller's speech, as the session gives them; shown stage by stage.
    marks = {"endpoint_ms": 520.4, "transcript_ms": 520.6, "reply_start_ms": 520.8, "first_clause_ms": 521.8}
    marks |= {"first_audio_ready_ms": 581.8, "first_audio_ms": 640.2, "voice_to_voice_ms": 640.2}
    assert line("latency", marks) == (
        "latency: voice-to-voice 640 ms (endpoint 520, transcript 0, start 0, first clause 1, tts 60, playout 58)"
    )
    assert line("paused", {}) is None


# Whole calls through PulseAudio -----------------------------------------------------------------------------------

LEVEL = 0.003  # -50 dBFS: a null sink's monitor is exactly silent between the agent's words
BLOCK = 320  # 20 ms at 16 kHz
#: Silence that means the agent has finished its answer (it pauses about 0.4 s between sentences).
FINISHED_S = 1.2


class Talk:
    """`voiceagent talk` on the test's PulseAudio server (no language model, steady Piper), its output in files."""

    def __init__(self, pulse: PulseAudio, tmp_path: Path, domain: Path, *options: str):
        self.out, self.err = tmp_path / "talk.out", tmp_path / "talk.err"
        command = [sys.executable, "-m", "voiceagent", "--config", str(DETERMINISTIC), "talk", "--no-lm"]
        command += ["--domain", str(domain), "--records", str(tmp_path / "records"), *options]
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen(command, cwd=ROOT, env=pulse.env, stdout=out, stderr=err)

    def running(self) -> bool:
        return self.process.poll() is None

    def finish(self, timeout_s: float = 20.0) -> tuple[int | None, str, str]:
        """Wait for talk to exit: its exit code (None: it did not, and was killed), stdout and stderr."""
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            code = None
        self.kill()
        return code, self.out.read_text(), self.err.read_text()

    def kill(self) -> None:
        if self.running():
            self.process.kill()
            self.process.wait()


class AgentRecording:
    """What comes out of the agent's speaker, recorded as it plays (16 kHz), with its level."""

    def __init__(self, pulse: PulseAudio):
        self.recorder = subprocess.Popen(
            ["parec", "--device=agent_out.monitor", "--format=s16le", "--rate=16000", "--channels=1"]
            + ["--latency-msec=20"],
            env=pulse.env,
            stdout=subprocess.PIPE,
        )
        self._pcm = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while chunk := self.recorder.stdout.read1(4096):
            with self._lock:
                self._pcm += chunk

    @property
    def samples(self) -> np.ndarray:
        with self._lock:
            pcm = bytes(self._pcm[: len(self._pcm) // 2 * 2])
        return np.frombuffer(pcm, np.int16).astype(np.float32) / 32768.0

    def now(self) -> int:
        return len(self.samples)

    def answer(self, since: int, talk: Talk, timeout_s: float = 40.0) -> Audio:
        """Wait for the agent to speak after sample ``since`` and finish (or hang up); what it said."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            time.sleep(0.1)
            heard = self.samples[since:]
            blocks = len(heard) // BLOCK
            loud = np.flatnonzero(np.sqrt(np.mean(heard[: blocks * BLOCK].reshape(blocks, BLOCK) ** 2, axis=1)) > LEVEL)
            if len(loud) and (blocks - 1 - loud[-1]) * BLOCK / 16000 >= FINISHED_S:
                return Audio(heard[: (loud[-1] + 1) * BLOCK], 16000)
            if not talk.running() and not len(loud):
                break
        pytest.fail(f"the agent did not answer within {timeout_s} s; talk said: {talk.err.read_text()[-3000:]}")

    def stop(self, path: Path) -> None:
        """Stop recording and keep the whole of it in ``path`` (to listen to when a test fails)."""
        self.recorder.terminate()
        self.recorder.wait(timeout=10)
        self._reader.join(timeout=5)
        write_wav(path, Audio(self.samples, 16000))


def said(voice, text: str, folder: Path) -> Path:
    """A WAV of the caller saying ``text``."""
    return write_wav(folder / f"caller-{len(list(folder.glob('caller-*.wav')))}.wav", voice.speak(text))


def the_record(tmp_path: Path) -> dict:
    files = list((tmp_path / "records").glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


@pytest.mark.slow
def test_a_whole_call_through_the_sound_devices(pulse, tmp_path, short_domain, voice, fast_asr):
    """sounddevice, the devices' own 44.1 kHz: greeting, order number, name, status, goodbye, and talk exits."""
    lines = ["Where is my order? The number is one two three four.", "Bob Smith.", "That's all, thank you. Bye!"]
    wavs = [said(voice, line, tmp_path) for line in lines]
    recording = AgentRecording(pulse)
    talk = Talk(pulse, tmp_path, short_domain, "--input-device", "pulse", "--output-device", "pulse")
    try:
        answers = [recording.answer(0, talk)]
        for wav in wavs:
            pulse.say(wav)
            answers.append(recording.answer(recording.now(), talk))
        code, out, err = talk.finish()
    finally:
        talk.kill()
        recording.stop(tmp_path / "agent.wav")

    heard = [heard_words(fast_asr, answer) for answer in answers]
    assert "how can i help" in heard[0]
    assert "1234" in heard[1] and "postcode" in heard[1]
    assert "prepared" in heard[2] and "shipped" in heard[2]
    assert "goodbye" in heard[3]
    assert code == 0, err
    assert out.count("latency: voice-to-voice") == 3, out
    assert out.strip().endswith("[call ended: agent ended the call]"), out
    record = the_record(tmp_path)
    assert record["end_reason"] == "agent ended the call"
    assert record["transport"] == "local sounddevice" and record["sample_rate"] == 44100
    assert [t["role"] for t in record["turns"]] == ["agent", "caller"] * 3 + ["agent"]
    assert record["slots"] == {"order_number": "1234", "verified": True}
    assert all(t["latency"]["voice_to_voice_ms"] < 4000 for t in record["turns"][2::2]), record["turns"]
    assert "Traceback" not in err, err  # the record is written by one thread at a time


@pytest.mark.slow
def test_pyaudio_at_48_khz_and_the_caller_hanging_up(pulse, tmp_path, short_domain, voice, fast_asr):
    """PyAudio on the default devices, at another rate than theirs; SIGTERM is the caller putting the phone down."""
    wav = said(voice, "Where is my order? The number is one two three four.", tmp_path)
    recording = AgentRecording(pulse)
    talk = Talk(pulse, tmp_path, short_domain, "--backend", "pyaudio", "--sample-rate", "48000")
    try:
        recording.answer(0, talk)
        pulse.say(wav)
        answer = recording.answer(recording.now(), talk)
        talk.process.send_signal(signal.SIGTERM)
        code, out, err = talk.finish()
    finally:
        talk.kill()
        recording.stop(tmp_path / "agent.wav")

    heard = heard_words(fast_asr, answer)
    assert "1234" in heard and "postcode" in heard
    assert code == 0, err
    assert "[call ended: caller hung up]" in out
    record = the_record(tmp_path)
    assert record["end_reason"] == "caller hung up"
    assert record["transport"] == "local pyaudio" and record["sample_rate"] == 48000
    assert [t["role"] for t in record["turns"]] == ["agent", "caller", "agent"]
    assert record["slots"]["order_number"] == "1234"
