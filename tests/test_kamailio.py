"""The scale-out recipe, run: Kamailio (Debian's package) with configs/kamailio/kamailio.cfg in front of two
`voiceagent serve` instances, SIPp placing calls to Kamailio, and the calls spread over both agents."""

import json
import shutil
import signal
import subprocess
import time

import pytest
from conftest import ROOT
from sip_peers import Serve, free_port, sipp

pytestmark = pytest.mark.slow
RECIPE = ROOT / "configs" / "kamailio" / "kamailio.cfg"


@pytest.fixture
def agents(tmp_path, short_domain):
    servers = [Serve(tmp_path / name, short_domain) for name in ("a", "b")]
    yield servers
    for server in servers:
        if server.process.poll() is None:
            server.stop()


@pytest.fixture
def kamailio(tmp_path, agents):
    if shutil.which("kamailio") is None:
        pytest.fail("kamailio is not installed: run scripts/system-deps.sh")
    port = free_port()
    destinations = tmp_path / "dispatcher.list"
    destinations.write_text("".join(f"1 sip:127.0.0.1:{agent.sip_port}\n" for agent in agents))
    config = tmp_path / "kamailio.cfg"
    config.write_text(
        RECIPE.read_text()
        .replace("listen=udp:127.0.0.1:5060", f"listen=udp:127.0.0.1:{port}")
        .replace('"configs/kamailio/dispatcher.list"', f'"{destinations}"')
    )
    process = subprocess.Popen(
        ["kamailio", "-f", str(config), "-DD", "-E", "-Y", str(tmp_path)], stderr=subprocess.PIPE, text=True
    )
    time.sleep(1.0)
    assert process.poll() is None, process.stderr.read()
    yield port
    process.send_signal(signal.SIGTERM)
    process.wait(10)


def test_kamailio_spreads_sipp_calls_over_two_agents(tmp_path, agents, kamailio, voice):
    capture = sipp(kamailio, tmp_path, voice, "Where is my order?", answer_ms=6000, calls=4)
    streams = {packet.ssrc for packet, _ in capture.stop()}
    assert len(streams) == 4  # every call was answered with audio
    for agent in agents:
        deadline = time.monotonic() + 10
        while True:
            records = [json.loads(f.read_text()) for f in agent.records.glob("*.json")]
            if len(records) == 2 and all(r["end_reason"] for r in records) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(records) == 2  # round robin: two calls each
        for record in records:
            assert record["end_reason"] == "caller hung up"
            assert "order" in [t for t in record["turns"] if t["role"] == "caller"][0]["text"].lower()
        assert agent.stop() == 0
