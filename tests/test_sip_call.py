"""Real SIP calls: `voiceagent serve` answers SIPp (Debian's sip-tester), a real SIP client that sends the caller's
question as PCMU RTP and keys as RFC 4733 events. SIPp cannot record what it hears, so its SDP points the media
at a UDP socket of the test's: every RTP packet the agent sends is captured there, put in order, decoded and
transcribed, and the agent's answer must be the right one."""

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import DETERMINISTIC, ROOT, heard_words

from voiceagent.audio import Audio, phone_line
from voiceagent.config import build_tts, load_config
from voiceagent.g711 import MULAW
from voiceagent.telephony.rtp import RtpPacket

pytestmark = pytest.mark.slow
SCENARIO = ROOT / "tests" / "sipp" / "caller.xml"


def free_port(kind=socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Serve:
    """`voiceagent serve` in a process of its own, stopped with SIGTERM by its pid."""

    def __init__(self, folder: Path, domain: Path, *options: str):
        self.sip_port, self.http_port = free_port(), free_port(socket.SOCK_STREAM)
        self.records = folder / "records"
        config = folder / "serve.toml"
        config.write_text(
            DETERMINISTIC.read_text() + f'\n[dialogue]\ndomain = "{domain}"\n\n[serve]\nrecords = "{self.records}"\n'
        )
        command = [sys.executable, "-m", "voiceagent", "--config", str(config), "serve", "--no-lm"]
        command += ["--sip", f"127.0.0.1:{self.sip_port}", "--http", f"127.0.0.1:{self.http_port}", *options]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=folder)
        self.log: list[str] = []
        threading.Thread(target=self._read_log, daemon=True).start()
        deadline = time.monotonic() + 120
        while not any("listening" in line for line in self.log):
            assert self.process.poll() is None, "".join(self.log)
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)

    def _read_log(self) -> None:
        for line in self.process.stderr:
            self.log.append(line)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


class RtpCapture:
    """A UDP socket that keeps every packet sent to it."""

    def __init__(self):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.packets: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.packets.append(self.socket.recv(2048))
            except TimeoutError:
                pass

    def audio(self) -> Audio:
        """The agent's stream: packets in sequence order (it starts at a random number and may wrap), decoded."""
        self._stop.set()
        self._thread.join()
        self.socket.close()
        packets = [RtpPacket.parse(p) for p in self.packets]
        first = packets[0].sequence
        packets.sort(key=lambda p: (p.sequence - first) & 0xFFFF)
        pcm = np.concatenate([MULAW.decode(p.payload) for p in packets if p.payload_type == 0])
        return Audio.from_pcm16(pcm, 8000)


@pytest.fixture(scope="module")
def voice():
    return build_tts(load_config(DETERMINISTIC))


@pytest.fixture
def serve(tmp_path, short_domain):
    if shutil.which("sipp") is None:
        pytest.fail("sipp is not installed: run scripts/system-deps.sh")
    server = Serve(tmp_path, short_domain)
    yield server
    if server.process.poll() is None:
        server.stop()


def call(serve: Serve, folder: Path, voice, question: str, keys: str = "", answer_ms: int = 9000):
    """SIPp calls the agent, waits for the greeting, asks ``question``, optionally presses ``keys``, hangs up.
    The agent's RTP as audio."""
    audio = phone_line(voice.speak(question).trim())
    (folder / "question.ulaw").write_bytes(MULAW.encode(audio.pcm16()))
    press = ""
    if keys:
        press = f'  <nop><action><exec play_dtmf="{keys}"/></action></nop>\n  <pause milliseconds="7000"/>'
    scenario = folder / "caller.xml"
    scenario.write_text(SCENARIO.read_text().format(greeting_ms=4500, answer_ms=answer_ms, keys=press))
    capture = RtpCapture()
    command = ["sipp", "-sf", str(scenario), "-m", "1", "-i", "127.0.0.1", "-mp", str(free_port()), "-nostdin"]
    command += ["-key", "capture_port", str(capture.port), "-key", "question", f"{folder / 'question.ulaw'},1,0"]
    command += ["-timeout", "60s", "-timeout_error", f"127.0.0.1:{serve.sip_port}"]
    sipp = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=90)
    assert sipp.returncode == 0, sipp.stdout[-2000:] + sipp.stderr[-2000:]
    time.sleep(0.5)  # the last packets
    return capture.audio()


def record_of(serve: Serve) -> dict:
    deadline = time.monotonic() + 10
    while not (files := list(serve.records.glob("*.json"))) or not json.loads(files[0].read_text())["end_reason"]:
        assert time.monotonic() < deadline, "no finished call record"
        time.sleep(0.2)
    return json.loads(files[0].read_text())


def test_a_sipp_call_hears_the_right_answer(serve, tmp_path, voice, fast_asr):
    heard = call(serve, tmp_path, voice, "Where is my order? The number is one two three four.")
    said = heard_words(fast_asr, heard)
    assert "through to" in said and "help" in said  # the greeting
    assert "order 1234" in said and "postcode" in said
    record = record_of(serve)
    assert record["transport"] == "sip" and record["end_reason"] == "caller hung up"
    assert record["slots"]["order_number"] == "1234"
    assert serve.stop() == 0
    log = "".join(serve.log)
    assert f"call {record['call_id']} started (sip)" in log and f"call {record['call_id']} ended (sip)" in log


def test_keys_pressed_in_sipp_reach_the_dialogue_core(serve, tmp_path, voice, fast_asr):
    heard = call(serve, tmp_path, voice, "Where is my order?", keys="1234#", answer_ms=6000)
    said = heard_words(fast_asr, heard)
    assert "order number" in said and "order 1234" in said
    record = record_of(serve)
    assert [t["dtmf"] for t in record["turns"] if t["role"] == "caller"] == [None, "1234#"]


def test_sigterm_ends_calls_cleanly_and_exits_0(serve):
    assert serve.stop() == 0
    assert "stopped" in "".join(serve.log)
