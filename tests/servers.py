"""Servers the tests run of their own: voiceagent's telephony server on free ports of 127.0.0.1, and a private
PulseAudio server whose virtual devices stand in for a sound card. Their fixtures are in conftest.py."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from voiceagent.telephony.server import Listen, TelephonyServer

HOST = "127.0.0.1"


class Served:
    """A ``TelephonyServer`` listening on free ports of 127.0.0.1 (SIP, AudioSocket, HTTP, or what ``listen``
    says), serving on its own event loop in a background thread until ``stop``."""

    def __init__(self, server: TelephonyServer, listen: Listen | None = None):
        self.server = server
        self.listen = listen or Listen(sip=(HOST, 0), audiosocket=(HOST, 0), http=(HOST, 0))
        self.loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="telephony-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 60
        listeners = sum(getattr(self.listen, name) is not None for name in ("sip", "audiosocket", "http"))
        while len(server.bound) < listeners:
            assert self._thread.is_alive(), f"the server did not start: {self.error!r}"
            assert time.monotonic() < deadline, "the server did not start listening within 60 s"
            time.sleep(0.01)

    def _serve(self) -> None:
        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.run(self.listen)

        try:
            asyncio.run(serve())
        except BaseException as exc:
            self.error = exc
            raise

    def address(self, listener: str) -> tuple[str, int]:
        return self.server.bound[listener]

    def stop(self) -> None:
        if self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.server.stop)
        self._thread.join(20)
        assert not self._thread.is_alive(), "the server did not stop within 20 s"
        assert self.error is None, f"the server failed: {self.error!r}"

    def get(self, path: str) -> tuple[int, str, str]:
        """GET ``path`` from the HTTP listener: status, content type, body."""
        host, port = self.address("http")
        try:
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as response:
                return response.status, response.headers.get_content_type(), response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get_content_type(), exc.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """A sample of ``GET /metrics`` (0 when it is not there yet)."""
        _, _, text = self.get("/metrics")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return sample.value
        return 0.0


class PulseAudio:
    """A PulseAudio server of the test's own: caller_in (the caller speaks here; the agent's microphone is its
    monitor) and agent_out (the agent's speaker), the defaults."""

    def __init__(self, runtime_dir: Path):
        runtime_dir.mkdir(mode=0o700)
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir)}
        self.env.pop("PULSE_SERVER", None)
        self.server = subprocess.Popen(
            ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "-n", "--load=module-native-protocol-unix"]
            + [f"--log-target=file:{runtime_dir / 'pulseaudio.log'}"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while self.pactl("info", check=False).returncode != 0:
            if self.server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"PulseAudio did not start: {(runtime_dir / 'pulseaudio.log').read_text()[-2000:]}")
            time.sleep(0.05)
        self.pactl("load-module", "module-null-sink", "sink_name=caller_in")
        self.pactl("load-module", "module-null-sink", "sink_name=agent_out")
        self.pactl("set-default-source", "caller_in.monitor")
        self.pactl("set-default-sink", "agent_out")

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, check=check, timeout=10)

    def say(self, wav: Path) -> None:
        """The caller speaks (returns once the words are out)."""
        subprocess.run(["paplay", "--device=caller_in", str(wav)], env=self.env, check=True, timeout=30)

    def stop(self) -> None:
        self.server.terminate()
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
