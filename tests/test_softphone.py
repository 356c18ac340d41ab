"""The browser softphone and the call console.

The protocol of the softphone's WebSocket (``/api/softphone``) is checked message by message and fuzzed; a client
that speaks it holds a conversation with the real models; and a real headless Chromium (Debian's, driven by
Playwright) places a call from the page with a fake microphone fed from a WAV file, sees the agent's answer in the
transcript, keys in an order number, hangs up, and finds the call in the console with its recording. Screenshots
of both pages are saved under ``out/test-artifacts/``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import aiohttp
import numpy as np
import pytest
import soundfile
from conftest import ROOT, heard_words, words
from hypothesis import given
from hypothesis import strategies as st
from servers import Served
from test_serve import LINE, Line, agent_turns, caller_turns, check_pace

from voiceagent.audio import Audio
from voiceagent.telephony.server import pcm16_bytes, samples_of
from voiceagent.web.softphone import Dtmf, Hangup, SoftphoneError, Start, parse_control

ARTIFACTS = ROOT / "out" / "test-artifacts"
CHROMIUM = shutil.which("chromium")


# The protocol ---------------------------------------------------------------------------------------------------


def test_control_messages_parse():
    assert parse_control('{"type": "start", "sample_rate": 48000}') == Start(48000)
    assert parse_control('{"type": "dtmf", "digit": "#"}') == Dtmf("#")
    assert parse_control('{"type": "hangup"}') == Hangup()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[1, 2]",
        '{"type": "start"}',
        '{"type": "start", "sample_rate": 44100.5}',
        '{"type": "start", "sample_rate": true}',
        '{"type": "start", "sample_rate": 1000}',
        '{"type": "start", "sample_rate": 10000000}',
        '{"type": "dtmf", "digit": "12"}',
        '{"type": "dtmf", "digit": 1}',
        '{"type": "dial", "number": "999"}',
        '{"digit": "1"}',
    ],
)
def test_bad_control_messages_are_refused(text):
    with pytest.raises(SoftphoneError):
        parse_control(text)


def test_what_a_client_sent_is_quoted_in_the_error_only_in_part():
    for message in ({"type": "x" * 10_000}, {"type": "dtmf", "digit": "9" * 10_000}):
        with pytest.raises(SoftphoneError) as error:
            parse_control(json.dumps(message))
        assert len(str(error.value)) < 120


@given(st.one_of(st.text(), st.dictionaries(st.text(), st.one_of(st.text(), st.integers(), st.none())).map(json.dumps)))
def test_any_text_parses_or_raises_the_protocol_error(text):
    try:
        parse_control(text)
    except SoftphoneError:
        pass


# A client of the protocol -------------------------------------------------------------------------------------


class SoftphonePeer:
    """The page's side of a call, at 8 kHz: start, the microphone as PCM, keys, hang-up; what comes back kept."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self.line = Line(self._audio, self._key, self._hang_up)
        self.events: list[dict] = []
        self.started = asyncio.Event()
        self._tasks = [asyncio.create_task(self._receive())]

    async def start(self) -> None:
        await self.ws.send_str(json.dumps({"type": "start", "sample_rate": LINE}))
        await asyncio.wait_for(self.started.wait(), 10)
        self._tasks.append(asyncio.create_task(self.line.run()))

    async def _audio(self, samples: np.ndarray) -> None:
        await self.ws.send_bytes(pcm16_bytes(samples))

    async def _key(self, key: str) -> None:
        await self.ws.send_str(json.dumps({"type": "dtmf", "digit": key}))

    async def _hang_up(self) -> None:
        await self.ws.send_str(json.dumps({"type": "hangup"}))

    async def _receive(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.BINARY:
                self.line.heard(samples_of(message.data))
                continue
            event = json.loads(message.data)
            self.events.append(event)
            if event["type"] == "started":
                self.started.set()
        self.line.closed.set()

    def kinds(self, kind: str) -> list[dict]:
        return [e["data"] for e in self.events if e["type"] == "event" and e["kind"] == kind]

    async def closed(self, timeout_s: float = 5.0) -> None:
        await asyncio.wait_for(self.line.closed.wait(), timeout_s)
        await asyncio.gather(*self._tasks)


@pytest.mark.slow
def test_a_softphone_call_with_bad_messages_among_good_ones(serve, voice, fast_asr, tmp_path):
    served = serve()
    host, port = served.address("http")
    question = voice.speak("Where is my order?", LINE).trim()

    async def call():
        async with aiohttp.ClientSession() as client, client.ws_connect(f"ws://{host}:{port}/api/softphone") as ws:
            await ws.send_bytes(b"\x01\x02\x03")  # audio before start: no call to feed, dropped
            await ws.send_str("not json")
            await ws.send_str('{"type": "start", "sample_rate": 3}')
            peer = SoftphonePeer(ws)
            await peer.start()
            await ws.send_bytes(b"\x00\x00\x00")  # an odd byte: dropped, the call goes on
            await ws.send_str('{"type": "start", "sample_rate": 16000}')  # started already: counted, skipped
            await ws.send_str(json.dumps({"type": "a_b" * 5000}))  # logged, but only a bounded part of it
            greeting = await peer.line.answer()
            await peer.line.say(question)
            answer = await peer.line.answer()
            await peer.line.press("1234#")
            read_back = await peer.line.answer()
            await peer.line.hang_up()
            await peer.closed()
            return peer, [greeting, answer, read_back]

    peer, answers = asyncio.run(call())
    heard = [heard_words(fast_asr, Audio(answer, LINE)) for answer in answers]
    assert "how can i help" in heard[0]
    assert "order number" in heard[1]
    assert "1234" in heard[2]
    check_pace(peer.line)

    call_id = next(e["call_id"] for e in peer.events if e["type"] == "started")
    assert "order" in words(peer.kinds("caller")[0]["text"]) and peer.kinds("caller")[1] == {"dtmf": "1234#"}
    assert any("order number" in a["text"].lower() for a in peer.kinds("agent"))
    assert len(peer.kinds("latency")) >= 2 and all(lat["voice_to_voice_ms"] > 0 for lat in peer.kinds("latency"))
    record = ended_record(tmp_path / "records")
    assert record["call_id"] == call_id and record["end_reason"] == "caller hung up"
    assert record["transport"] == "browser" and record["sample_rate"] == LINE
    assert [t["dtmf"] for t in caller_turns(record)] == [None, "1234#"] and len(agent_turns(record)) == 3
    assert served.metric("voiceagent_errors_total", kind="softphone") == 4
    assert served.metric("voiceagent_calls_total", transport="browser") == 1


@pytest.mark.slow
def test_a_tab_closed_mid_reply_and_a_caller_over_the_limit(serve, tmp_path):
    served = serve(max_calls=1)
    host, port = served.address("http")
    url = f"ws://{host}:{port}/api/softphone"

    async def calls():
        async with aiohttp.ClientSession() as client:
            first = SoftphonePeer(await client.ws_connect(url))
            await first.start()
            await first.line.agent_speaking(1.0)  # the greeting is under way
            async with client.ws_connect(url) as ws:  # a second caller while the one line is taken
                await ws.send_str(json.dumps({"type": "start", "sample_rate": LINE}))
                refused = json.loads((await ws.receive(timeout=5)).data)
                assert (await ws.receive(timeout=5)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            await first.ws.close()  # the tab closed: no hang-up message, mid-sentence
            await first.closed()
            return first, refused

    first, refused = asyncio.run(calls())
    assert refused["type"] == "refused" and "busy" in refused["reason"]
    record = ended_record(tmp_path / "records")
    assert record["end_reason"] == "caller hung up" and agent_turns(record)[0]["interrupted"]
    assert served.metric("voiceagent_errors_total", kind="call_limit") == 1
    assert served.metric("voiceagent_active_calls", transport="browser") == 0


# A real browser ---------------------------------------------------------------------------------------------------


def caller_recording(voice, path, rate: int = 48000) -> None:
    """What the fake microphone says: quiet through the greeting, the question, then quiet (WAV, 16-bit)."""
    quiet = np.zeros(rate * 5, np.float32)
    question = voice.speak("I'd like to check the status of my order, please.", rate).trim().samples
    soundfile.write(path, np.concatenate([quiet, question, quiet, quiet]), rate, subtype="PCM_16")


#: Counts the agent's voice as the page receives it: a test's look at what the speaker is given.
COUNT_VOICE = """
const Native = window.WebSocket;
window.voiceFrames = 0;
window.loudFrames = 0;
window.WebSocket = class extends Native {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (message) => {
      if (!(message.data instanceof ArrayBuffer)) return;
      const pcm = new Int16Array(message.data);
      window.voiceFrames += 1;
      if (pcm.some((sample) => Math.abs(sample) > 300)) window.loudFrames += 1;
    });
  }
};
"""


def ended_record(records, timeout_s: float = 10.0) -> dict:
    """The one call record in ``records``, once the server has ended the call (the page hangs up first)."""
    deadline = time.monotonic() + timeout_s
    while True:
        files = list(records.glob("*.json"))
        record = json.loads(files[0].read_text()) if len(files) == 1 else {}
        if record.get("end_reason") or time.monotonic() > deadline:
            return record
        time.sleep(0.1)


@pytest.fixture
def chromium(tmp_path, voice):
    """A headless Chromium (Debian's) whose microphone plays a recorded caller once."""
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: scripts/system-deps.sh installs it")
    from playwright.sync_api import sync_playwright

    recording = tmp_path / "caller.wav"
    caller_recording(voice, recording)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={recording}%noloop",
                "--autoplay-policy=no-user-gesture-required",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.mark.slow
def test_a_call_from_the_browser_then_the_console_shows_it(serve, chromium, tmp_path):
    served = serve()
    host, port = served.address("http")
    base = f"http://{host}:{port}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(base_url=base)
    context.add_init_script(COUNT_VOICE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto("/")
    page.get_by_role("button", name="Call the agent").click()
    page.wait_for_function("document.getElementById('status').textContent.startsWith('In call')", timeout=20_000)
    agent = page.locator(".turn.agent .text")
    agent.filter(has_text="How can I help").wait_for(timeout=20_000)
    page.locator(".turn.caller .text").filter(has_text="order").wait_for(timeout=30_000)
    agent.filter(has_text="order number").wait_for(timeout=20_000)
    page.locator(".turn.agent .latency").first.wait_for(timeout=20_000)
    page.screenshot(path=ARTIFACTS / "softphone.png", full_page=True)

    for key in "1234#":
        page.locator("#keypad button", has_text=key).click()
    agent.filter(has_text="one two three four").wait_for(timeout=20_000)
    assert page.evaluate("window.loudFrames") > 50, "the agent's voice did not reach the page"
    console = context.new_page()  # a supervisor watches the call from the console while it goes on
    console.on("pageerror", lambda error: errors.append(str(error)))
    console.goto("/console")
    console.locator("#calls tbody tr.active").filter(has_text="in progress").click()
    console.locator("#turns .turn.agent .text").filter(has_text="order number").wait_for()
    assert console.locator("#recording").is_hidden()  # no audio to play while the call goes on

    page.get_by_role("button", name="Hang up").click()
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Call ended')")
    record = ended_record(tmp_path / "records")
    assert record["transport"] == "browser" and record["end_reason"] == "caller hung up"
    assert [t["dtmf"] for t in caller_turns(record)] == [None, "1234#"]

    # The console shows the end of the call by itself: the outcome, and the recording to play.
    console.locator("#facts dd", has_text="caller hung up").wait_for(timeout=10_000)
    console.wait_for_function("document.getElementById('audio').duration > 5", timeout=10_000)
    assert console.locator("#turns .turn.caller").count() == 2
    assert "order" in console.locator("#turns .turn.caller .text").first.inner_text().lower()
    assert console.locator("#turns .turn.agent", has_text="order number").locator(".latency").count() == 1
    console.screenshot(path=ARTIFACTS / "console.png", full_page=True)
    assert errors == []


# HTTPS ----------------------------------------------------------------------------------------------------------


class NoModels:
    """An engine with nothing to load: the pages and the API need none."""

    def load(self) -> None:
        pass


def test_the_pages_over_https_with_the_configured_certificate(tmp_path):
    import ssl
    import subprocess
    import urllib.request

    from voiceagent.telephony.server import Listen, TelephonyServer

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )  # fmt: skip
    served = Served(TelephonyServer(NoModels()), Listen(http=("127.0.0.1", 0), http_tls=(str(cert), str(key))))
    try:
        host, port = served.address("http")
        trusted = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(f"https://{host}:{port}/", context=trusted, timeout=5) as response:
            assert response.status == 200 and "Call the agent" in response.read().decode()
        with urllib.request.urlopen(f"https://{host}:{port}/health", context=trusted, timeout=5) as response:
            assert json.loads(response.read())["status"] == "ok"
    finally:
        served.stop()


def test_a_certificate_that_does_not_load_is_a_clear_error(tmp_path):
    from voiceagent.errors import ConfigError
    from voiceagent.telephony.http_server import _tls_context

    (tmp_path / "cert.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot load"):
        _tls_context(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
