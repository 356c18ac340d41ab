"""The HTTP side of the server (aiohttp): ``GET /health``, Prometheus ``GET /metrics``, Twilio Media Streams
on the WebSocket ``/media`` (point a TwiML ``<Connect><Stream url="wss://.../media">`` at it), the browser
softphone and call console (voiceagent/web/softphone.py) and the API under ``/api/`` (voiceagent/web/api.py).

A media stream is one call: ``start`` opens it (the callSid is the call id), ``media`` carries the caller's
mu-law, ``dtmf`` their keys, ``stop`` or a closed socket hangs up. The agent's voice goes back as 20 ms ``media``
messages paced in real time, so Twilio's own queue stays short; on barge-in a ``clear`` drops what it still holds.
When the agent ends the call the socket is closed. A message that is not Media Streams is counted and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from aiohttp import WSMsgType, web

from voiceagent.audio import Audio
from voiceagent.errors import ConfigError
from voiceagent.g711 import MULAW
from voiceagent.telephony import twilio
from voiceagent.telephony.pacing import FRAME_S, pace
from voiceagent.telephony.server import TelephonyServer
from voiceagent.web import api, softphone

log = logging.getLogger("voiceagent.serve")
RATE = 8000
FRAME = round(RATE * FRAME_S)
SERVER = web.AppKey("server", TelephonyServer)


async def start(server: TelephonyServer, host: str, port: int, tls: tuple[str, str] | None = None):
    """Serve HTTP (HTTPS with ``tls``: certificate and key files) until the returned cleanup is awaited."""
    app = web.Application()
    app[SERVER] = server
    app.add_routes([web.get("/health", _health), web.get("/metrics", _metrics), web.get("/media", _media_stream)])
    softphone.setup(app, server)
    api.setup(app, server)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=_tls_context(*tls) if tls else None)
    await site.start()
    server.bound["http"] = runner.addresses[0][:2]
    return runner.cleanup


def _tls_context(certificate: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certificate, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"[serve] tls_cert / tls_key: cannot load {certificate} and {key}: {exc}") from None
    return context


async def _health(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVER].health())


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[SERVER].metrics.render(), content_type="text/plain", charset="utf-8")


async def _media_stream(request: web.Request) -> web.WebSocketResponse:
    server: TelephonyServer = request.app[SERVER]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    loop = asyncio.get_running_loop()
    session = None
    pacer = None
    stream_sid = ""

    async def send(text: str) -> None:
        # Once the caller hung up (the stream closing) there is no one to tell: a clear for the reply that the
        # hang-up cut short would only fail.
        if not ws.closed:
            with contextlib.suppress(ConnectionError):
                await ws.send_str(text)

    def events(kind: str, data: dict) -> None:  # from the session's threads
        if kind == "interrupted":
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(send(twilio.clear_message(stream_sid))))
        elif kind == "ended":
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(ws.close()))

    async def play() -> None:
        if not ws.closed:
            samples = session.play(FRAME)
            await send(twilio.media_message(stream_sid, MULAW.encode(Audio(samples, RATE).pcm16())))

    try:
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                event = twilio.parse(message.data)
            except twilio.MediaStreamError as exc:
                server.metrics.errors.labels("media_stream").inc()
                log.warning("media stream: %s", exc)
                continue
            if isinstance(event, twilio.Start) and session is None:
                stream_sid = event.stream_sid
                session = server.open_call("twilio", RATE, call_id=event.call_sid or None, on_event=events)
                if session is None:
                    break
                pacer = asyncio.create_task(pace(session, play))
            elif session is None:
                continue
            elif isinstance(event, twilio.Media):
                session.feed(Audio.from_pcm16(MULAW.decode(event.payload), RATE).samples)
            elif isinstance(event, twilio.Dtmf):
                session.dtmf(event.digit)
            elif isinstance(event, twilio.Stop):
                break
    finally:
        server.line_closed(session, pacer)
        await ws.close()
    return ws
