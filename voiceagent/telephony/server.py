"""The telephony server: one process answering calls on every enabled listener with one set of loaded models.

``voiceagent serve`` runs SIP (UDP), Asterisk AudioSocket (TCP) and an HTTP server (health, Prometheus metrics,
Twilio Media Streams over WebSocket) on one asyncio loop. Each call is a ``CallSession`` of the shared engine;
the loop only moves frames (decoding, pacing), while recognition and replies run on each call's own threads, so a
slow call never holds up the others. A call past ``max_calls`` is refused (SIP 486, a hang-up elsewhere), as is
one with the id of a call in progress. A line is logged when each call starts and ends; SIGTERM ends every call
cleanly (records saved) and exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from dataclasses import dataclass

import numpy as np

from voiceagent.audio import Audio
from voiceagent.config import load_config
from voiceagent.conversation.session import CallSession, Engine
from voiceagent.telephony.metrics import Metrics

log = logging.getLogger("voiceagent.serve")
#: How often call data past the retention period is deleted.
RETENTION_EVERY_S = 3600.0


def pcm16_bytes(samples: np.ndarray) -> bytes:
    """float32 samples as 16-bit little-endian PCM."""
    return Audio(samples, 8000).pcm16().astype("<i2").tobytes()


def samples_of(pcm16: bytes) -> np.ndarray:
    """16-bit little-endian PCM as float32 samples."""
    return Audio.from_pcm16(np.frombuffer(pcm16, dtype="<i2"), 8000).samples


@dataclass
class Listen:
    """Where each listener binds; None leaves it off."""

    sip: tuple[str, int] | None = None
    audiosocket: tuple[str, int] | None = None
    http: tuple[str, int] | None = None
    #: (certificate, key) PEM files: HTTPS on the http listener (browsers give a page the microphone only over
    #: HTTPS, or from 127.0.0.1 / localhost).
    http_tls: tuple[str, str] | None = None


def address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT`` for 127.0.0.1) as a pair."""
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


class TelephonyServer:
    def __init__(
        self,
        engine: Engine,
        max_calls: int = 8,
        sip_options: dict | None = None,
        api_options: dict | None = None,
        retention_days: float = 0.0,
    ):
        self.engine = engine
        self.max_calls = max_calls
        self.sip_options = sip_options or {}
        #: The [api] table (its defaults under what was given): the HTTP API's token, limits and jobs folder.
        self.api_options = {**load_config()["api"], **(api_options or {})}
        #: The HTTP API's batch jobs (``voiceagent.web.api.Jobs``), once the http listener serves them.
        self.jobs = None
        #: Call records, their audio and API jobs older than this many days are deleted (0: kept).
        self.retention_days = retention_days
        self.metrics = Metrics()
        self.calls: dict[str, CallSession] = {}
        # Calls that have ended but are still writing their record and audio (until session.finished).
        self._finishing: dict[str, CallSession] = {}
        self.started = time.monotonic()
        #: The bound addresses, once listening (port 0 in the config picks a free one).
        self.bound: dict[str, tuple[str, int]] = {}
        self._stopping: asyncio.Event | None = None

    def open_call(self, transport: str, rate: int, call_id: str | None = None, on_event=None) -> CallSession | None:
        """A new call, or None at the call limit or when a call of that id is in progress already (its record and
        its place in ``calls`` are taken). ``on_event`` also hears the session's events (from its threads)."""
        if len(self.calls) >= self.max_calls:
            self.metrics.errors.labels("call_limit").inc()
            log.warning("call refused (%s): %d calls already", transport, len(self.calls))
            return None
        if call_id is not None and call_id in self.calls:
            self.metrics.errors.labels("duplicate_call").inc()
            log.warning("call refused (%s): call %s is in progress already", transport, call_id)
            return None

        def events(kind: str, data: dict) -> None:
            if kind == "latency":
                self.metrics.reply(transport, data)
            if on_event is not None:
                on_event(kind, data)

        session = self.engine.open_call(rate, call_id=call_id, transport=transport, on_event=events)
        self.calls[session.call_id] = session
        self.metrics.call_started(transport)
        log.info("call %s started (%s)", session.call_id, transport)
        session.start()
        return session

    def call_ended(self, session: CallSession, reason: str = "caller hung up") -> None:
        """The transport's end of a call (idempotent): the session closed, the call forgotten."""
        session.close(reason)
        self._finishing = {call_id: s for call_id, s in self._finishing.items() if not s.finished.is_set()}
        if not session.finished.is_set():
            self._finishing[session.call_id] = session
        if self.calls.pop(session.call_id, None) is not None:
            self.metrics.call_ended(session.transport)
            turns = sum(t.role == "caller" for t in session.state.turns)
            log.info(
                "call %s ended (%s): %s, %d caller turns", session.call_id, session.transport, session.end_reason, turns
            )

    def line_closed(self, session: CallSession | None, pacer: asyncio.Task | None) -> None:
        """A caller's socket is gone (or the call never opened): its call, if any, ended and its pacer stopped."""
        if session is not None:
            self.call_ended(session)
        if pacer is not None:
            pacer.cancel()

    def in_progress(self, call_id: str) -> bool:
        """Whether the call of that id is on, or has ended and is still writing its record or audio: until it has
        finished, its files are neither final nor safe to delete."""
        if call_id in self.calls:
            return True
        session = self._finishing.get(call_id)
        return session is not None and not session.finished.is_set()

    def health(self) -> dict:
        return {"status": "ok", "active_calls": len(self.calls), "uptime_s": round(time.monotonic() - self.started)}

    async def run(self, listen: Listen) -> None:
        """Serve until SIGTERM/SIGINT (or ``stop()``), then end every call and return."""
        from voiceagent.telephony import audiosocket_server, http_server, sip_server

        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for number in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(number, self._stopping.set)
        self.engine.load()
        closers = []
        if listen.sip:
            closers.append(await sip_server.start(self, *listen.sip, **self.sip_options))
        if listen.audiosocket:
            closers.append(await audiosocket_server.start(self, *listen.audiosocket))
        if listen.http:
            closers.append(await http_server.start(self, *listen.http, tls=listen.http_tls))
        log.info("listening: %s", ", ".join(f"{name} {host}:{port}" for name, (host, port) in self.bound.items()))
        retention = asyncio.create_task(self._keep_retention()) if self.retention_days > 0 else None
        try:
            await self._stopping.wait()
        finally:
            if retention is not None:
                retention.cancel()
            for session in list(self.calls.values()):
                self.call_ended(session, "server stopped")
            for close in closers:
                await close()
            log.info("stopped")

    async def _keep_retention(self) -> None:
        """Delete call records, their audio and API jobs older than ``retention_days``: now, then every hour.
        Jobs go through the API's ``Jobs`` (queued and running ones are left alone); without the http listener
        there is no API in this process, and its jobs folder waits for a server that serves it."""
        from voiceagent.privacy import purge_older_than

        while True:
            try:
                removed = await asyncio.to_thread(purge_older_than, self.retention_days, self.engine.records)
                if self.jobs is not None:
                    removed += await asyncio.to_thread(self.jobs.purge_older_than, self.retention_days)
            except OSError as exc:  # a file in use, a folder gone: the next round tries again
                log.warning("retention: %s", exc)
            else:
                if removed:
                    log.info("retention: removed %d files and folders past %g days", len(removed), self.retention_days)
            await asyncio.sleep(RETENTION_EVERY_S)

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
