"""Real SIP peers for the telephony tests: `voiceagent serve` in its own process, SIPp placing calls from the
scenario template in tests/sipp/caller.xml, and a UDP socket that captures the agent's RTP."""

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
from conftest import DETERMINISTIC, ROOT

from voiceagent.audio import Audio, phone_line
from voiceagent.bench.calls import RtpCapture
from voiceagent.g711 import MULAW

SCENARIO = ROOT / "tests" / "sipp" / "caller.xml"


def free_port(kind=socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Serve:
    """`voiceagent serve` in a process of its own, stopped with SIGTERM by its pid."""

    def __init__(self, folder: Path, domain: Path, *options: str):
        folder.mkdir(parents=True, exist_ok=True)
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


def agent_audio(capture: RtpCapture) -> Audio:
    """The agent's stream of one call: packets in sequence order (from a random start, maybe wrapping), decoded."""
    packets = [packet for packet, _ in capture.stop()]
    first = packets[0].sequence
    packets.sort(key=lambda p: (p.sequence - first) & 0xFFFF)
    return Audio.from_pcm16(np.concatenate([MULAW.decode(p.payload) for p in packets if p.payload_type == 0]), 8000)


def sipp(target_port: int, folder: Path, voice, question: str, keys: str = "", answer_ms: int = 9000, calls: int = 1):
    """SIPp places ``calls`` calls (two at a time) to 127.0.0.1:``target_port``: each waits for the greeting, asks
    ``question``, optionally presses ``keys``, hangs up. The agents' RTP, captured, as audio."""
    if shutil.which("sipp") is None:
        pytest.fail("sipp is not installed: run scripts/system-deps.sh")
    audio = phone_line(voice.speak(question).trim())
    (folder / "question.ulaw").write_bytes(MULAW.encode(audio.pcm16()))
    press = ""
    if keys:
        press = f'  <nop><action><exec play_dtmf="{keys}"/></action></nop>\n  <pause milliseconds="7000"/>'
    scenario = folder / "caller.xml"
    scenario.write_text(SCENARIO.read_text().format(greeting_ms=4500, answer_ms=answer_ms, keys=press))
    capture = RtpCapture()
    command = ["sipp", "-sf", str(scenario), "-m", str(calls), "-l", "2", "-i", "127.0.0.1", "-mp", str(free_port())]
    command += ["-key", "capture_port", str(capture.port), "-key", "question", f"{folder / 'question.ulaw'},1,0"]
    command += ["-nostdin", "-timeout", "90s", "-timeout_error", f"127.0.0.1:{target_port}"]
    run = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    time.sleep(0.5)  # the last packets
    return capture
