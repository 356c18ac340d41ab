"""Asterisk AudioSocket over TCP: one call per connection (``AudioSocket(uuid,host:port)`` in the dialplan).

Asterisk sends the call's UUID first (it becomes the call id), then 20 ms audio frames and DTMF; the agent sends
its voice in 20 ms slin frames at 8 kHz, silence while it thinks (Asterisk hangs up after about 2 s without
frames), and a hang-up frame when it ends the call. A connection that sends something that is not AudioSocket is
counted and closed; the others go on.
"""

from __future__ import annotations

import asyncio
import logging

import soxr

from voiceagent.telephony import audiosocket
from voiceagent.telephony.pacing import FRAME_S, pace
from voiceagent.telephony.server import TelephonyServer, pcm16_bytes, samples_of

log = logging.getLogger("voiceagent.serve")
RATE = 8000
FRAME = round(RATE * FRAME_S)
#: How long a new connection may take to say which call it is.
UUID_TIMEOUT_S = 5.0


async def start(server: TelephonyServer, host: str, port: int):
    tcp = await asyncio.start_server(lambda r, w: _connection(server, r, w), host, port)
    server.bound["audiosocket"] = tcp.sockets[0].getsockname()[:2]

    async def close() -> None:
        tcp.close()
        await tcp.wait_closed()

    return close


async def _connection(server: TelephonyServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    frames = audiosocket.FrameReader()
    session = None
    pacer = None
    reason = "caller hung up"
    try:
        first = await asyncio.wait_for(_next_frames(reader, frames), UUID_TIMEOUT_S)
        call_id = str(audiosocket.uuid_of(first[0])) if first else None
        if call_id is None:
            return
        session = server.open_call("audiosocket", RATE, call_id=call_id)
        if session is None:
            writer.write(audiosocket.hangup_frame())
            return

        def send() -> None:
            writer.write(audiosocket.audio_frame(pcm16_bytes(session.play(FRAME)), RATE))

        pacer = asyncio.create_task(pace(session, send))
        resamplers: dict[int, soxr.ResampleStream] = {}
        pending = first[1:]
        while not session.ended.is_set():
            for frame in pending:
                if frame.kind == audiosocket.KIND_HANGUP:
                    return
                if frame.kind == audiosocket.KIND_DTMF:
                    session.dtmf(audiosocket.digit_of(frame))
                elif frame.kind == audiosocket.KIND_ERROR:
                    log.warning("call %s: Asterisk reports an error (%s)", call_id, frame.payload.hex())
                elif frame.kind in audiosocket.AUDIO_RATES:
                    if len(frame.payload) % 2:
                        raise audiosocket.AudioSocketError(f"16-bit audio of {len(frame.payload)} bytes")
                    samples = samples_of(frame.payload)
                    rate = audiosocket.sample_rate(frame.kind)
                    if rate != RATE:  # newer Asterisk: 16 kHz and up; the session's line stays at 8 kHz
                        resampler = resamplers.setdefault(rate, soxr.ResampleStream(rate, RATE, 1))
                        samples = resampler.resample_chunk(samples)
                    session.feed(samples)
            pending = await _next_frames(reader, frames, until=pacer)
            if pending is None:
                return  # the connection closed, or the agent ended the call
    except (audiosocket.AudioSocketError, TimeoutError, ConnectionError) as exc:
        server.metrics.errors.labels("audiosocket").inc()
        log.warning("audiosocket connection dropped: %s", exc)
        reason = f"line dropped: {exc}"
    finally:
        if session is not None:
            ended_by_agent = session.ended.is_set()
            server.call_ended(session, reason)
            if ended_by_agent:
                writer.write(audiosocket.hangup_frame())
        if pacer is not None:
            pacer.cancel()
        writer.close()


async def _next_frames(reader: asyncio.StreamReader, frames: audiosocket.FrameReader, until=None):
    """The next frames from the peer (at least one), or None when it closed or ``until`` (a task) finished."""
    while True:
        read = asyncio.ensure_future(reader.read(4096))
        waits = {read} if until is None else {read, until}
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if read not in done:
            read.cancel()
            return None
        data = read.result()
        if not data:
            return None
        if got := frames.feed(data):
            return got
