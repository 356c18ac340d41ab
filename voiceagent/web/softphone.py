"""The browser softphone: the page at ``/``, the call console at ``/console``, and the call's line, a WebSocket at
``/api/softphone``.

One WebSocket is one call. The page opens it, says ``{"type": "start", "sample_rate": R}`` (its AudioContext's
rate), then streams the microphone as binary messages of 16-bit little-endian mono PCM at that rate, in any size;
``{"type": "dtmf", "digit": "5"}`` is a key of the page's keypad, ``{"type": "hangup"}`` (or closing the socket)
hangs up. The agent answers ``{"type": "started", "call_id"}`` (or ``{"type": "refused", "reason"}`` at the call
limit, and closes the socket), then its voice as binary 20 ms frames of the same
PCM at the same rate, paced in real time (the page plays them through a short queue), and the call's events as
``{"type": "event", "kind", "data"}``: partial, caller, agent, interrupted (the page drops the voice it still
holds: barge-in), resumed, latency, ended. Text in the events is redacted as the call record is. A message that
is not this protocol (a second start among them) is counted and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from aiohttp import WSMsgType, web

from voiceagent.telephony.pacing import FRAME_S, pace
from voiceagent.telephony.server import TelephonyServer, pcm16_bytes, samples_of

log = logging.getLogger("voiceagent.serve")
STATIC = Path(__file__).resolve().parent / "static"
#: The rates a page may stream at: what browsers' AudioContexts run at.
RATES = range(8000, 192001)
KEYS = frozenset("0123456789*#ABCD")
#: The session events the page is told of (the others are the engine's own bookkeeping).
EVENTS = frozenset({"partial", "caller", "agent", "interrupted", "resumed", "latency", "ended"})


class SoftphoneError(ValueError):
    """A message from the page that is not the softphone protocol."""


@dataclass(frozen=True)
class Start:
    """Open the call: the page's audio comes and goes at ``sample_rate``."""

    sample_rate: int


@dataclass(frozen=True)
class Dtmf:
    """A key of the page's keypad."""

    digit: str


@dataclass(frozen=True)
class Hangup:
    """The caller hung up."""


def parse_control(text: str) -> Start | Dtmf | Hangup:
    """One text message from the page."""
    try:
        message = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SoftphoneError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise SoftphoneError("not a JSON object")
    kind = message.get("type")
    if kind == "start":
        rate = message.get("sample_rate")
        if not isinstance(rate, int) or isinstance(rate, bool) or rate not in RATES:
            raise SoftphoneError(f"start: sample_rate must be an integer from 8000 to 192000, not {rate!r:.40}")
        return Start(rate)
    if kind == "dtmf":
        digit = message.get("digit")
        if not isinstance(digit, str) or digit not in KEYS:
            raise SoftphoneError(f"dtmf: digit must be one of 0-9 * # A-D, not {digit!r:.40}")
        return Dtmf(digit)
    if kind == "hangup":
        return Hangup()
    raise SoftphoneError(f"unknown message type {kind!r:.40}")  # what a client sends is logged: a bounded part


def setup(app: web.Application, server: TelephonyServer) -> None:
    """The pages, their scripts and the softphone's WebSocket."""

    def page(name: str):
        async def handler(request: web.Request) -> web.FileResponse:
            return web.FileResponse(STATIC / name)

        return handler

    app.router.add_get("/", page("index.html"))
    app.router.add_get("/console", page("console.html"))
    app.router.add_static("/static/", STATIC)

    async def call(request: web.Request) -> web.WebSocketResponse:
        return await _call(request, server)

    app.router.add_get("/api/softphone", call)


async def _call(request: web.Request, server: TelephonyServer) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    loop = asyncio.get_running_loop()
    redact = server.engine.redactor.data
    session = None
    pacer = None

    async def send(message: str | bytes) -> None:
        if not ws.closed:
            with contextlib.suppress(ConnectionError):
                await (ws.send_bytes(message) if isinstance(message, bytes) else ws.send_str(message))

    def events(kind: str, data: dict) -> None:  # from the session's threads
        if kind in EVENTS:
            text = json.dumps({"type": "event", "kind": kind, "data": redact(data)}, default=str)
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(send(text)))
        if kind == "ended":
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(ws.close()))

    try:
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                if session is not None:  # an odd trailing byte is no sample
                    session.feed(samples_of(message.data[: len(message.data) // 2 * 2]))
                continue
            if message.type != WSMsgType.TEXT:
                continue
            try:
                control = parse_control(message.data)
                if isinstance(control, Start) and session is not None:
                    raise SoftphoneError("start: the call has started already")
            except SoftphoneError as exc:
                server.metrics.errors.labels("softphone").inc()
                log.warning("softphone: %s", exc)
                continue
            if isinstance(control, Start):
                session = server.open_call("browser", control.sample_rate, on_event=events)
                if session is None:
                    await send(json.dumps({"type": "refused", "reason": "the agent is busy: try again soon"}))
                    break
                await send(json.dumps({"type": "started", "call_id": session.call_id}))
                pacer = asyncio.create_task(pace(session, _voice(session, send, round(control.sample_rate * FRAME_S))))
            elif isinstance(control, Dtmf) and session is not None:
                session.dtmf(control.digit)
            elif isinstance(control, Hangup):
                break
    finally:
        server.line_closed(session, pacer)
        await ws.close()
    return ws


def _voice(session, send, frame: int):
    """The pacer's tick: the next ``frame`` samples of the agent's voice, sent to the page."""
    return lambda: send(pcm16_bytes(session.play(frame)))
