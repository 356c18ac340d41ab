"""The telephony server end to end, in-process on the real models.

A ``TelephonyServer`` serves on free ports of 127.0.0.1, on its own event loop in a background thread, and the
tests are its peers: an Asterisk AudioSocket client and a Twilio Media Streams client that speak with Piper's
voice in real time (20 ms frames, silence between turns) and transcribe what the agent said back; plain HTTP for
/health and /metrics; and raw SIP datagrams for what a hostile or overloaded network sends. Whole SIP calls (SIPp)
are in test_sip_call.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
import uuid
from collections import deque

import aiohttp
import numpy as np
import pytest
from conftest import heard_words, words
from servers import HOST, Served

from voiceagent.audio import Audio
from voiceagent.g711 import MULAW
from voiceagent.telephony import audiosocket, sip, twilio
from voiceagent.telephony.pacing import FRAME_S
from voiceagent.telephony.server import pcm16_bytes, samples_of

LINE = 8000
FRAME = round(LINE * FRAME_S)


# HTTP ---------------------------------------------------------------------------------------------------------


def test_health_and_metrics(serve):
    served = serve()
    status, kind, body = served.get("/health")
    assert (status, kind) == (200, "application/json")
    health = json.loads(body)
    assert health["status"] == "ok" and health["active_calls"] == 0 and health["uptime_s"] >= 0
    status, kind, body = served.get("/metrics")
    assert (status, kind) == (200, "text/plain")
    assert "# TYPE voiceagent_active_calls gauge" in body
    assert "voiceagent_voice_to_voice_seconds" in body
    assert served.get("/nothing-here")[0] == 404


# A caller's end of a line ---------------------------------------------------------------------------------------

HANG_UP = object()


class Line:
    """The caller's end of a call, whatever carries it: every 20 ms one frame of the caller's speech (silence
    between turns, keys between frames) goes out; the agent's frames are kept with the time each arrived."""

    def __init__(self, send_audio, send_key, send_hang_up):
        self._send_audio, self._send_key, self._send_hang_up = send_audio, send_key, send_hang_up
        self._queue: deque = deque()
        #: The agent's frames (float32 at 8 kHz) and when each arrived (time.monotonic()).
        self.frames: list[np.ndarray] = []
        self.arrived: list[float] = []
        self._last_sound = -1  # the index of the agent's last frame with sound
        self.closed = asyncio.Event()

    def heard(self, samples: np.ndarray) -> None:
        """A frame of the agent's voice arrived (the transport's receiver calls this)."""
        if np.abs(samples).max(initial=0.0) > 1e-3:
            self._last_sound = len(self.frames)
        self.frames.append(samples)
        self.arrived.append(time.monotonic())

    def since(self, start: int) -> np.ndarray:
        """What the agent said from its frame ``start`` on."""
        return np.concatenate(self.frames[start:]) if len(self.frames) > start else np.zeros(0, np.float32)

    async def run(self) -> None:
        """Send on an absolute 20 ms schedule until hung up or closed."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while not self.closed.is_set():
            item = self._queue.popleft() if self._queue else None
            if item is HANG_UP:
                await self._send_hang_up()
                return
            if isinstance(item, str):
                await self._send_key(item)
                item = None
            await self._send_audio(np.zeros(FRAME, np.float32) if item is None else item)
            due += FRAME_S
            await asyncio.sleep(max(0.0, due - loop.time()))

    async def _sent(self) -> None:
        while self._queue and not self.closed.is_set():
            await asyncio.sleep(FRAME_S)

    async def say(self, audio) -> None:
        """Speak ``audio`` (8 kHz) in real time; returns once it has all gone out."""
        samples = np.pad(audio.samples, (0, -len(audio.samples) % FRAME))
        self._queue.extend(samples.reshape(-1, FRAME))
        await self._sent()

    async def press(self, keys: str) -> None:
        """Key presses, 100 ms apart."""
        for key in keys:
            self._queue.extend([key, *[None] * 4])
        await self._sent()

    async def hang_up(self) -> None:
        self._queue.append(HANG_UP)
        await self._sent()

    async def answer(self, quiet_s: float = 0.8, timeout_s: float = 20.0) -> np.ndarray:
        """What the agent says from now until it has been quiet ``quiet_s`` after speaking (or the line closed)."""
        start, deadline = len(self.frames), time.monotonic() + timeout_s
        while not self.closed.is_set() and time.monotonic() < deadline:
            if self._last_sound >= start and len(self.frames) - 1 - self._last_sound >= quiet_s / FRAME_S:
                break
            await asyncio.sleep(FRAME_S)
        return self.since(start)

    async def agent_speaking(self, for_s: float, timeout_s: float = 20.0) -> None:
        """Until the agent has been speaking ``for_s`` since it started (from now)."""
        start, deadline = len(self.frames), time.monotonic() + timeout_s
        first = None
        while time.monotonic() < deadline and not self.closed.is_set():
            if first is None and self._last_sound >= start:
                first = next(i for i in range(start, len(self.frames)) if np.abs(self.frames[i]).max() > 1e-3)
            if first is not None and (len(self.frames) - first) * FRAME_S >= for_s:
                return
            await asyncio.sleep(FRAME_S)
        raise AssertionError(f"the agent did not speak for {for_s} s")


def check_pace(line: Line) -> None:
    """The agent's frames came at 50 a second, silence included, without a gap a peer would notice."""
    arrived = np.array(line.arrived)
    rate = (len(arrived) - 1) / (arrived[-1] - arrived[0])
    assert 48 <= rate <= 52, f"{rate:.1f} frames/s"
    assert np.diff(arrived).max() < 0.5, f"a gap of {np.diff(arrived).max():.2f} s"


# AudioSocket ----------------------------------------------------------------------------------------------------


class AudioSocketPeer:
    """Asterisk's side of ``AudioSocket(uuid,host:port)``: the UUID first, then slin frames, keys, a hang-up."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, call_id: uuid.UUID):
        self.reader, self.writer = reader, writer
        self.line = Line(self._audio, self._key, self._hang_up)
        #: Frames from the agent that are not audio (a hang-up).
        self.others: list[audiosocket.Frame] = []
        writer.write(audiosocket.encode(audiosocket.KIND_UUID, call_id.bytes))
        self._tasks = [asyncio.create_task(self.line.run()), asyncio.create_task(self._receive())]

    @classmethod
    async def connect(cls, address: tuple[str, int], call_id: uuid.UUID) -> AudioSocketPeer:
        return cls(*await asyncio.open_connection(*address), call_id)

    async def _audio(self, samples: np.ndarray) -> None:
        self.writer.write(audiosocket.audio_frame(pcm16_bytes(samples)))

    async def _key(self, key: str) -> None:
        self.writer.write(audiosocket.encode(audiosocket.KIND_DTMF, key.encode()))

    async def _hang_up(self) -> None:
        self.writer.write(audiosocket.hangup_frame())

    async def _receive(self) -> None:
        frames = audiosocket.FrameReader()
        while data := await self.reader.read(4096):
            for frame in frames.feed(data):
                if frame.kind == audiosocket.KIND_AUDIO:
                    self.line.heard(samples_of(frame.payload))
                else:
                    self.others.append(frame)
        self.line.closed.set()

    async def closed(self, timeout_s: float = 5.0) -> None:
        """Until the server has closed the connection."""
        await asyncio.wait_for(self.line.closed.wait(), timeout_s)
        await asyncio.gather(*self._tasks)
        self.writer.close()


def caller_turns(record: dict) -> list[dict]:
    return [t for t in record["turns"] if t["role"] == "caller"]


def agent_turns(record: dict) -> list[dict]:
    return [t for t in record["turns"] if t["role"] == "agent"]


@pytest.mark.slow
def test_an_audiosocket_call_is_heard_right_and_the_agent_hangs_up(serve, voice, fast_asr, tmp_path):
    served = serve()
    said = {text: voice.speak(text, LINE).trim() for text in ("Where is my order?", "That's all, bye!")}
    call_id = uuid.uuid4()

    async def call():
        peer = await AudioSocketPeer.connect(served.address("audiosocket"), call_id)
        answers = [await peer.line.answer()]
        await peer.line.say(said["Where is my order?"])
        answers.append(await peer.line.answer())
        await peer.line.press("1234#")
        answers.append(await peer.line.answer())
        await peer.line.say(said["That's all, bye!"])
        answers.append(await peer.line.answer())
        await peer.closed()  # the agent hung up: no hang-up frame from the caller needed
        return peer, answers

    peer, answers = asyncio.run(call())
    heard = [heard_words(fast_asr, Audio(answer, LINE)) for answer in answers]
    assert "how can i help" in heard[0]
    assert "order number" in heard[1]
    assert "1234" in heard[2]
    assert "goodbye" in heard[3]
    assert peer.others == [audiosocket.Frame(audiosocket.KIND_HANGUP)]
    check_pace(peer.line)

    record = json.loads((tmp_path / "records" / f"{call_id}.json").read_text())
    assert (record["call_id"], record["transport"]) == (str(call_id), "audiosocket")
    assert record["end_reason"] == "agent ended the call"
    callers = caller_turns(record)
    assert [t["dtmf"] for t in callers] == [None, "1234#", None]
    assert "order" in words(callers[0]["text"]) and "bye" in words(callers[2]["text"])
    assert len(agent_turns(record)) == 4 and record["slots"]["order_number"] == "1234"

    assert served.metric("voiceagent_calls_total", transport="audiosocket") == 1
    assert served.metric("voiceagent_active_calls", transport="audiosocket") == 0
    assert served.metric("voiceagent_turns_total", transport="audiosocket") == 3
    assert served.metric("voiceagent_voice_to_voice_seconds_count", transport="audiosocket") == 3
    assert served.metric("voiceagent_voice_to_voice_seconds_bucket", transport="audiosocket", le="3.0") == 3


# Twilio Media Streams -----------------------------------------------------------------------------------------


class TwilioPeer:
    """Twilio's side of a ``<Connect><Stream>``: connected, start, 20 ms mu-law media, dtmf, stop."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, stream_sid: str):
        self.ws, self.stream_sid = ws, stream_sid
        self.line = Line(self._audio, self._key, self._hang_up)
        self.chunks = 0
        #: When each ``clear`` arrived (time.monotonic()), and the agent's messages that are neither media nor clear.
        self.clears: list[float] = []
        self.others: list[dict] = []
        self._tasks: list[asyncio.Task] = []

    async def start(self, call_sid: str) -> None:
        await self.ws.send_str(twilio.encode(twilio.Connected()))
        await self.ws.send_str(twilio.encode(twilio.Start(self.stream_sid, call_sid)))
        self._tasks = [asyncio.create_task(self.line.run()), asyncio.create_task(self._receive())]

    async def _audio(self, samples: np.ndarray) -> None:
        self.chunks += 1
        media = twilio.Media(MULAW.encode(Audio(samples, LINE).pcm16()), chunk=self.chunks, timestamp=20 * self.chunks)
        await self.ws.send_str(twilio.encode(media, self.stream_sid))

    async def _key(self, key: str) -> None:
        await self.ws.send_str(twilio.encode(twilio.Dtmf(key), self.stream_sid))

    async def _hang_up(self) -> None:
        await self.ws.send_str(twilio.encode(twilio.Stop(), self.stream_sid))

    async def _receive(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            assert data["streamSid"] == self.stream_sid
            if data["event"] == "media":
                mulaw = base64.b64decode(data["media"]["payload"])
                self.line.heard(Audio.from_pcm16(MULAW.decode(mulaw), LINE).samples)
            elif data["event"] == "clear":
                self.clears.append(time.monotonic())
            else:
                self.others.append(data)
        self.line.closed.set()

    async def closed(self, timeout_s: float = 5.0) -> None:
        await asyncio.wait_for(self.line.closed.wait(), timeout_s)
        await asyncio.gather(*self._tasks)


def media_url(served: Served) -> str:
    host, port = served.address("http")
    return f"http://{host}:{port}/media"


@pytest.mark.slow
def test_a_twilio_media_stream_call_with_barge_in(serve, voice, fast_asr, tmp_path):
    served = serve()
    texts = ("How can I pay?", "Sorry, I want to cancel my order.")
    said = {text: voice.speak(text, LINE).trim() for text in texts}
    stream_sid, call_sid = "MZ" + uuid.uuid4().hex, "CA" + uuid.uuid4().hex

    async def call():
        async with aiohttp.ClientSession() as http, http.ws_connect(media_url(served)) as ws:
            peer = TwilioPeer(ws, stream_sid)
            await peer.start(call_sid)
            line = peer.line
            answers = [await line.answer()]
            await line.say(said["How can I pay?"])
            start = len(line.frames)
            await line.agent_speaking(1.5)
            cut = line.since(start)
            talked_over, talked_over_at = len(line.frames), time.monotonic()
            await line.say(said["Sorry, I want to cancel my order."])
            over = line.since(talked_over)
            answers.append(await line.answer())
            await line.press("1234#")
            start = len(line.frames)
            await line.agent_speaking(3.2)  # "Thanks, that's order one two three four." and a little more
            answers.append(line.since(start))
            await line.hang_up()  # while the agent speaks
            await peer.closed()
            return peer, answers, cut, over, talked_over_at

    peer, answers, cut, over, talked_over_at = asyncio.run(call())
    heard = [heard_words(fast_asr, Audio(answer, LINE)) for answer in answers]
    assert "how can i help" in heard[0]
    assert heard_words(fast_asr, Audio(cut, LINE)).startswith("we accept")
    # Barge-in: the agent paused within a few frames of the caller's speech, and Twilio was told to drop its queue.
    assert not np.abs(over[int(0.5 * LINE) :]).max() > 1e-3
    assert len(peer.clears) == 1 and 0 < peer.clears[0] - talked_over_at < 3.0
    assert "order number" in heard[1]
    assert "1234" in heard[2]
    assert peer.others == []
    check_pace(peer.line)

    record = json.loads((tmp_path / "records" / f"{call_sid}.json").read_text())
    assert (record["call_id"], record["transport"], record["end_reason"]) == (call_sid, "twilio", "caller hung up")
    callers = caller_turns(record)
    assert "pay" in words(callers[0]["text"]) and "cancel" in words(callers[1]["text"])
    assert callers[2]["dtmf"] == "1234#"
    answer = agent_turns(record)[1]
    assert answer["interrupted"] and answer["text"].startswith("We accept") and "instalments" in answer["unheard"]
    answer = agent_turns(record)[-1]  # cut short by the hang-up: what the caller heard
    assert answer["interrupted"] and answer["text"].startswith("Thanks, that's order one two three four.")
    assert "postcode" in answer["unheard"]
    assert served.metric("voiceagent_calls_total", transport="twilio") == 1
    assert served.metric("voiceagent_active_calls", transport="twilio") == 0


# Robustness -------------------------------------------------------------------------------------------------------


async def closed_by_server(address: tuple[str, int], data: bytes, call_id: uuid.UUID | None = None) -> bytes:
    """Send ``data`` on a new connection (in the call ``call_id``, once the agent's audio flows, when given);
    what came back before the server closed it."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        if call_id is not None:
            writer.write(audiosocket.encode(audiosocket.KIND_UUID, call_id.bytes))
            await asyncio.wait_for(reader.readexactly(3 + 320), 5)
        writer.write(data)
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def test_garbage_on_an_audiosocket_connection_drops_only_that_connection(serve, tmp_path):
    served = serve()
    address = served.address("audiosocket")
    call_id = uuid.uuid4()
    dropped = [uuid.uuid4(), uuid.uuid4()]
    garbage = [
        (b"GET / HTTP/1.1\r\n\r\n", None),  # not AudioSocket at all: an unknown kind
        (audiosocket.audio_frame(bytes(320)), None),  # audio before the UUID
        (b"\x10\xff\xff" + bytes(64), dropped[0]),  # an oversize frame in the middle of a call
        (b"\x10\x00\x03abc", dropped[1]),  # 16-bit audio of an odd number of bytes
    ]

    async def calls():
        peer = await AudioSocketPeer.connect(address, call_id)
        while len(peer.line.frames) < 10:
            await asyncio.sleep(FRAME_S)
        for data, in_call in garbage:
            await closed_by_server(address, data, in_call)
        # The same call again while it is in progress: refused with a hang-up.
        again = await closed_by_server(address, audiosocket.encode(audiosocket.KIND_UUID, call_id.bytes))
        going_on = len(peer.line.frames)
        await asyncio.sleep(0.5)
        going_on = len(peer.line.frames) - going_on
        await peer.line.hang_up()
        await peer.closed()
        return peer, going_on, again

    peer, going_on, again = asyncio.run(calls())
    assert again == audiosocket.hangup_frame()
    assert going_on >= 20  # 25 frames in 0.5 s
    assert peer.others == []  # the caller hung up: no hang-up frame back
    assert served.metric("voiceagent_errors_total", kind="audiosocket") == len(garbage)
    assert served.metric("voiceagent_errors_total", kind="duplicate_call") == 1
    assert served.metric("voiceagent_calls_total", transport="audiosocket") == 1 + len(dropped)
    assert served.metric("voiceagent_active_calls", transport="audiosocket") == 0
    record = json.loads((tmp_path / "records" / f"{call_id}.json").read_text())
    assert record["end_reason"] == "caller hung up"
    for dropped_call in dropped:
        record = json.loads((tmp_path / "records" / f"{dropped_call}.json").read_text())
        assert record["end_reason"].startswith("line dropped")
    assert json.loads(served.get("/health")[2])["active_calls"] == 0


def test_what_is_not_media_streams_is_counted_and_skipped(serve, tmp_path):
    served = serve()
    stream_sid, call_sid = "MZ" + uuid.uuid4().hex, "CA" + uuid.uuid4().hex
    garbage = [
        "not json",
        '{"event": "dance"}',
        '{"no": "event"}',
        "[1, 2, 3]",
        '{"event": "media", "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "@@@"}}',
        '{"event": "start", "start": {"streamSid": 7}}',
    ]

    async def call():
        async with aiohttp.ClientSession() as http, http.ws_connect(media_url(served)) as ws:
            await ws.send_str(garbage[0])  # before the start too: no call opened
            await ws.send_bytes(b"\x00\x01")  # binary frames are not Media Streams: ignored
            peer = TwilioPeer(ws, stream_sid)
            await peer.start(call_sid)
            while len(peer.line.frames) < 10:
                await asyncio.sleep(FRAME_S)
            for text in garbage:
                await ws.send_str(text)
            going_on = len(peer.line.frames)
            await peer.line.press("1234#")
            await peer.line.agent_speaking(0.3)  # its answer to the keys
            going_on = len(peer.line.frames) - going_on
            # The same call again while it is in progress: refused, the socket closed.
            async with http.ws_connect(media_url(served)) as again:
                await again.send_str(twilio.encode(twilio.Start("MZ-again", call_sid)))
                refused = await again.receive(timeout=5)
            await peer.line.hang_up()
            await peer.closed()
            return going_on, refused

    going_on, refused = asyncio.run(call())
    assert going_on >= 20
    assert refused.type == aiohttp.WSMsgType.CLOSE
    assert served.metric("voiceagent_errors_total", kind="duplicate_call") == 1
    assert served.metric("voiceagent_errors_total", kind="media_stream") == 1 + len(garbage)
    assert served.metric("voiceagent_calls_total", transport="twilio") == 1
    assert served.metric("voiceagent_active_calls", transport="twilio") == 0
    record = json.loads((tmp_path / "records" / f"{call_sid}.json").read_text())
    assert record["end_reason"] == "caller hung up"
    assert [t["dtmf"] for t in caller_turns(record)] == ["1234#"]


CODECS = {"0": "PCMU", "8": "PCMA", "18": "G729", "101": "telephone-event"}


class SipPeer:
    """A SIP user agent client on a plain UDP socket, for the requests a test composes itself."""

    def __init__(self, server: tuple[str, int]):
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # where the agent's RTP goes (unread)
        self.rtp.bind((HOST, 0))
        self.tag = sip.new_tag()

    def close(self) -> None:
        self.sock.close()
        self.rtp.close()

    def send(self, data: bytes | sip.SipMessage) -> None:
        self.sock.sendto(data if isinstance(data, bytes) else sip.serialize(data), self.server)

    def request(self, method: str, call_id: str, cseq: int = 1, to_tag: str = "", body: bytes = b"", branch=None):
        to = f"<sip:agent@{HOST}>" + (f";tag={to_tag}" if to_tag else "")
        fields = [
            ("Via", f"SIP/2.0/UDP {HOST}:{self.port};branch={branch or sip.new_branch()}"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:caller@{HOST}>;tag={self.tag}"),
            ("To", to),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Contact", f"<sip:caller@{HOST}:{self.port}>"),
        ]
        if body:
            fields.append(("Content-Type", "application/sdp"))
        return sip.SipMessage(method=method, uri=f"sip:agent@{HOST}:{self.server[1]}", fields=fields, body=body)

    def invite(self, call_id: str, formats: str = "0 101", branch=None) -> sip.SipMessage:
        rtpmaps = "".join(f"a=rtpmap:{pt} {CODECS[pt]}/8000\r\n" for pt in formats.split())
        offer = (
            f"v=0\r\no=caller 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
            f"m=audio {self.rtp.getsockname()[1]} RTP/AVP {formats}\r\n{rtpmaps}a=sendrecv\r\n"
        )
        return self.request("INVITE", call_id, body=offer.encode(), branch=branch)

    def responses(self, done, timeout_s: float = 10.0) -> list[sip.SipMessage]:
        """Responses received until ``done(responses)`` (AssertionError after ``timeout_s``)."""
        got: list[sip.SipMessage] = []
        deadline = time.monotonic() + timeout_s
        while not done(got):
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise AssertionError(f"no answer in {timeout_s} s; got {[r.status for r in got]}") from None
            got.append(sip.parse(data))
        return got


def final(responses: list[sip.SipMessage], method: str = "INVITE") -> dict[str, int]:
    """The final responses' status by Call-ID (the first one of each)."""
    finals: dict[str, int] = {}
    for response in responses:
        if response.status >= 200 and sip.cseq(response)[1] == method:
            finals.setdefault(response.header("Call-ID"), response.status)
    return finals


@pytest.fixture
def sip_peer():
    peers: list[SipPeer] = []

    def connect(served: Served) -> SipPeer:
        peers.append(SipPeer(served.address("sip")))
        return peers[-1]

    yield connect
    for peer in peers:
        peer.close()


def test_garbled_sip_is_counted_or_refused_and_the_server_goes_on(serve, sip_peer):
    served = serve()
    peer = sip_peer(served)
    rng = np.random.default_rng(5)
    whole = sip.serialize(peer.invite("truncated"))
    head_end = whole.index(b"\r\n\r\n")
    dropped = [
        *(rng.bytes(int(n)) for n in rng.integers(1, 1400, 20)),  # noise
        b"\xff\xfe" * 300,
        b"INVITE sip:agent@127.0.0.1 SIP/2.0\r\n\r\n",  # no headers
        b"SIP/2.0 200 OK\r\nVia: nowhere\r\n\r\n",
        whole[: head_end // 2],  # cut in the headers
        whole[: head_end + 30],  # cut in the body: shorter than its Content-Length
        whole.replace(b"1 INVITE", b"99999999999 INVITE"),  # a CSeq out of range
        whole.replace(b"Call-ID: truncated", b"Call-ID: \x01truncated"),  # a control character
    ]
    for data in dropped:
        peer.send(data)
    no_contact = peer.invite("no-contact")
    no_contact.fields = [f for f in no_contact.fields if f[0] != "Contact"]
    bad_sdp = peer.invite("bad-sdp")
    bad_sdp.body = b"v=1\r\nthis is no SDP\r\n"
    peer.send(no_contact)
    peer.send(bad_sdp)
    peer.send(peer.request("OPTIONS", "still-there"))
    responses = peer.responses(lambda got: "still-there" in final(got, "OPTIONS"))
    assert final(responses) == {"no-contact": 400, "bad-sdp": 400}
    assert final(responses, "OPTIONS") == {"still-there": 200}
    assert len(responses) == 3  # the dropped datagrams got no answer
    assert served.metric("voiceagent_errors_total", kind="sip_parse") == len(dropped) + 1  # and no-contact's 400
    assert served.metric("voiceagent_errors_total", kind="sdp_parse") == 1
    assert served.server.calls == {} and json.loads(served.get("/health")[2])["status"] == "ok"


def test_an_invite_offering_no_codec_the_agent_speaks_gets_488(serve, sip_peer):
    served = serve()
    peer = sip_peer(served)
    peer.send(peer.invite("g729-only", formats="18"))
    responses = peer.responses(lambda got: final(got))
    assert final(responses) == {"g729-only": 488}
    assert served.metric("voiceagent_errors_total", kind="sdp_codec") == 1


def test_cancel_while_ringing_ends_the_invite_with_487(serve, sip_peer):
    served = serve(answer_after_s=2.0)
    peer = sip_peer(served)
    branch = sip.new_branch()
    invite = peer.invite("cancelled", branch=branch)
    peer.send(invite)
    ringing = peer.responses(lambda got: any(r.status == 180 for r in got))
    assert [r.status for r in ringing] == [100, 180]
    peer.send(peer.request("CANCEL", "cancelled", branch=branch))
    responses = peer.responses(lambda got: final(got))
    assert final(responses, "CANCEL") == {"cancelled": 200}
    assert final(responses) == {"cancelled": 487}
    to_tag = sip.tag_of(next(r for r in responses if r.status == 487).header("To"))
    peer.send(peer.request("ACK", "cancelled", to_tag=to_tag, branch=branch))
    time.sleep(2.5)  # past answer_after_s: the cancelled call is not answered after all
    peer.sock.settimeout(0.05)
    with pytest.raises(TimeoutError):
        peer.sock.recv(65536)
    assert served.metric("voiceagent_calls_total", transport="sip") == 0
    assert served.server.calls == {}


def test_an_invite_flood_past_max_calls_gets_busy_here(serve, sip_peer):
    served = serve(max_calls=2)
    peer = sip_peer(served)
    call_ids = [f"flood-{n}" for n in range(6)]
    for call_id in call_ids:
        peer.send(peer.invite(call_id))
    responses = peer.responses(lambda got: len(final(got)) == len(call_ids))
    finals = final(responses)
    assert sorted(finals.values()) == [200, 200, 486, 486, 486, 486]
    assert served.metric("voiceagent_errors_total", kind="call_limit") == 4
    for response in responses:
        if response.status >= 200:
            ack = peer.request("ACK", response.header("Call-ID"), to_tag=sip.tag_of(response.header("To")))
            peer.send(ack)
    health = json.loads(served.get("/health")[2])
    assert health["status"] == "ok" and health["active_calls"] == 2
    answered = [r for r in responses if r.status == 200]
    for ok in answered:
        peer.send(peer.request("BYE", ok.header("Call-ID"), cseq=2, to_tag=sip.tag_of(ok.header("To"))))
    byes = peer.responses(lambda got: len(final(got, "BYE")) == 2)
    assert set(final(byes, "BYE").values()) == {200}
    assert json.loads(served.get("/health")[2])["active_calls"] == 0
    assert served.metric("voiceagent_calls_total", transport="sip") == 2
