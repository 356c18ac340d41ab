"""Real SIP calls: `voiceagent serve` answers SIPp (Debian's sip-tester), a real SIP client that sends the caller's
question as PCMU RTP and keys as RFC 4733 events. SIPp cannot record what it hears, so its SDP points the media
at a UDP socket of the test's: every RTP packet the agent sends is captured there, put in order, decoded and
transcribed, and the agent's answer must be the right one."""

import json
import time

import pytest
from conftest import heard_words
from sip_peers import Serve, agent_audio, sipp

pytestmark = pytest.mark.slow


@pytest.fixture
def serve(tmp_path, short_domain):
    server = Serve(tmp_path, short_domain)
    yield server
    if server.process.poll() is None:
        server.stop()


def record_of(serve: Serve) -> dict:
    deadline = time.monotonic() + 10
    while not (files := list(serve.records.glob("*.json"))) or not json.loads(files[0].read_text())["end_reason"]:
        assert time.monotonic() < deadline, "no finished call record"
        time.sleep(0.2)
    return json.loads(files[0].read_text())


def test_a_sipp_call_hears_the_right_answer(serve, tmp_path, voice, fast_asr):
    heard = agent_audio(sipp(serve.sip_port, tmp_path, voice, "Where is my order? The number is one two three four."))
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
    heard = agent_audio(sipp(serve.sip_port, tmp_path, voice, "Where is my order?", keys="1234#", answer_ms=6000))
    said = heard_words(fast_asr, heard)
    assert "order number" in said and "order 1234" in said
    record = record_of(serve)
    assert [t["dtmf"] for t in record["turns"] if t["role"] == "caller"] == [None, "1234#"]


def test_sigterm_ends_calls_cleanly_and_exits_0(serve):
    assert serve.stop() == 0
    assert "stopped" in "".join(serve.log)
