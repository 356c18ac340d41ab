"""The browser softphone and the call console in a real Firefox.

Debian's Firefox ESR, headless, driven over Marionette (Firefox's own remote protocol, through PyPI's
``marionette-driver``: Playwright drives only its own patched Firefox, which cannot be downloaded here). Its sound
devices are a private PulseAudio server's (test_talk.py): the caller speaks into the microphone (Firefox's fake one
plays a tone, and keys alone give the agent no request to take an order number for), and what the page plays is
recorded from the speaker and transcribed. The page calls the agent, hears the greeting, asks about an order, keys
in its number, hears it read back, hangs up, and the console shows the call with its recording. Screenshots, and
the speaker's recording, go to ``out/test-artifacts/firefox-*``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import heard_words
from test_serve import caller_turns
from test_softphone import ARTIFACTS, COUNT_VOICE
from test_talk import AgentRecording, said

from voiceagent.audio import Audio

FIREFOX = shutil.which("firefox-esr")

#: The profile's prefs: the microphone with no permission prompt, audio without a user gesture, Marionette on a
#: port Firefox picks (it writes it to ``MarionetteActivePort``), and none of the background traffic a fresh
#: profile starts (updates, telemetry, safe browsing, remote settings, captive-portal checks): no network here.
PREFS = {
    "marionette.port": 0,
    "media.navigator.permission.disabled": True,
    "media.autoplay.default": 0,
    "media.autoplay.block-webaudio": False,
    "app.update.disabledForTesting": True,
    "app.update.auto": False,
    "app.normandy.enabled": False,
    "app.shield.optoutstudies.enabled": False,
    "browser.aboutwelcome.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.ping-centre.telemetry": False,
    "browser.region.network.url": "",
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.downloads.remote.enabled": False,
    "browser.safebrowsing.provider.google4.updateURL": "",
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    "browser.search.update": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "extensions.blocklist.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.update.enabled": False,
    "media.gmp-manager.updateEnabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.http.speculative-parallel-limit": 0,
    "network.prefetch-next": False,
    "services.settings.server": "http://127.0.0.1:1/",
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.server": "",
    "toolkit.telemetry.unified": False,
}

#: Errors the page throws, kept for the test to read (Marionette has no page-error event).
CATCH_ERRORS = """
window.pageErrors = [];
window.addEventListener("error", (event) => window.pageErrors.push(String(event.message)));
window.addEventListener("unhandledrejection", (event) => window.pageErrors.push(String(event.reason)));
"""


def user_js(prefs: dict) -> str:
    return "".join(f"user_pref({json.dumps(name)}, {json.dumps(value)});\n" for name, value in prefs.items())


@pytest.fixture
def firefox(tmp_path, pulse):
    """A Marionette client of a headless Firefox ESR (Debian's) with a fresh profile, whose microphone and speaker
    are ``pulse``'s; Firefox and its child processes (one process group, started for it) are ended at the end."""
    if FIREFOX is None:
        pytest.fail("firefox-esr is not installed: scripts/system-deps.sh installs it")
    from marionette_driver.marionette import Marionette

    profile = tmp_path / "firefox-profile"
    profile.mkdir()
    (profile / "user.js").write_text(user_js(PREFS))
    with open(tmp_path / "firefox.log", "w") as log:
        process = subprocess.Popen(
            [FIREFOX, "--headless", "--marionette", "--no-remote", "--profile", str(profile)],
            env=pulse.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        client = Marionette(host="127.0.0.1", port=marionette_port(profile, process))
        client.start_session()
        yield client
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the group is Firefox's own: its content processes go with it
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def marionette_port(profile: Path, process: subprocess.Popen, timeout_s: float = 30) -> int:
    """The port Firefox's Marionette listens on, once it listens."""
    active_port = profile / "MarionetteActivePort"
    deadline = time.monotonic() + timeout_s
    while not active_port.exists() or not active_port.read_text().strip():
        assert process.poll() is None, f"Firefox exited with status {process.returncode}"
        assert time.monotonic() < deadline, f"Firefox's Marionette did not listen within {timeout_s:.0f} s"
        time.sleep(0.1)
    return int(active_port.read_text())


def run_in_page(client, source: str) -> None:
    """Run ``source`` as one of the page's own scripts (Marionette's scripts run in a realm of their own)."""
    client.execute_script(
        "const script = document.createElement('script'); script.textContent = arguments[0];"
        "document.head.append(script); script.remove();",
        script_args=[source],
    )


def wait_for(client, condition: str, timeout_s: float, what: str):
    """Wait until the page's JavaScript expression ``condition`` is truthy; its value."""
    from marionette_driver import Wait

    return Wait(client, timeout=timeout_s, interval=0.1).until(
        lambda c: c.execute_script(f"return {condition};", sandbox=None), message=f"waited {timeout_s} s for {what}"
    )


def wait_until_quiet(client, quiet_s: float = 1.0, timeout_s: float = 20) -> None:
    """Wait until the agent has said all it had to say: no loud frame for ``quiet_s``."""
    deadline = time.monotonic() + timeout_s
    last, since = None, time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, f"the agent did not fall quiet within {timeout_s} s"
        loud = client.execute_script("return window.loudFrames", sandbox=None)
        if loud != last:
            last, since = loud, time.monotonic()
        time.sleep(0.1)


def has_text(selector: str, text: str) -> str:
    """An expression: whether an element under ``selector`` contains ``text``."""
    elements = f"[...document.querySelectorAll({json.dumps(selector)})]"
    return f"{elements}.some((e) => e.textContent.includes({json.dumps(text)}))"


def screenshot(client, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"firefox-{name}.png").write_bytes(client.screenshot(format="binary", full=True))


@pytest.mark.slow
def test_a_call_from_firefox_then_the_console_shows_it(serve, firefox, pulse, voice, fast_asr, tmp_path):
    from marionette_driver import By

    served = serve()
    host, port = served.address("http")
    question = said(voice, "I'd like to check the status of my order, please.", tmp_path)
    speaker = AgentRecording(pulse)
    firefox.navigate(f"http://{host}:{port}/")
    # After the page's scripts, before the call: the page makes its WebSocket only when the call starts.
    run_in_page(firefox, CATCH_ERRORS + COUNT_VOICE)

    firefox.find_element(By.ID, "call").click()
    wait_for(firefox, "document.getElementById('status').textContent.startsWith('In call')", 20, "the call")
    wait_for(firefox, has_text(".turn.agent .text", "How can I help"), 20, "the greeting")
    wait_for(firefox, "window.loudFrames > 50", 20, "the greeting's voice to reach the page")
    wait_until_quiet(firefox)
    pulse.say(question)
    wait_for(firefox, has_text(".turn.caller .text", "order"), 30, "the question in the transcript")
    wait_for(firefox, has_text(".turn.agent .text", "order number"), 20, "the agent asking for the order number")
    wait_for(firefox, "document.querySelector('.turn.agent .latency')", 20, "the reply's latency")
    screenshot(firefox, "softphone")

    keys = {button.text: button for button in firefox.find_elements(By.CSS_SELECTOR, "#keypad button")}
    for key in "1234#":
        keys[key].click()
    wait_for(firefox, has_text(".turn.caller .text", "[keys 1234#]"), 20, "the keys in the transcript")
    wait_for(firefox, has_text(".turn.agent .text", "one two three four"), 20, "the order read back")
    wait_for(firefox, "document.querySelectorAll('.turn.agent .latency').length >= 2", 20, "the read-back's latency")
    wait_until_quiet(firefox)
    firefox.find_element(By.ID, "hangup").click()
    wait_for(firefox, "document.getElementById('status').textContent.startsWith('Call ended')", 10, "the hang-up")
    screenshot(firefox, "softphone-ended")
    assert firefox.execute_script("return window.pageErrors", sandbox=None) == []

    speaker.stop(ARTIFACTS / "firefox-speaker.wav")
    heard = heard_words(fast_asr, Audio(speaker.samples, 16000))
    assert "how can i help" in heard and "order number" in heard and "1234" in heard, heard

    record_files = list((tmp_path / "records").glob("*.json"))
    assert len(record_files) == 1
    record = json.loads(record_files[0].read_text())
    assert record["transport"] == "browser" and record["end_reason"] == "caller hung up"
    assert [t["dtmf"] for t in caller_turns(record)] == [None, "1234#"]

    firefox.navigate(f"http://{host}:{port}/console")
    run_in_page(firefox, CATCH_ERRORS)
    wait_for(firefox, has_text("#calls tbody tr", "browser"), 15, "the call in the list")
    # A cell of the row: Firefox's WebDriver cannot click a <tr> itself ("could not be scrolled into view").
    firefox.find_element(By.XPATH, "//table[@id='calls']/tbody/tr/td[text()='browser']").click()
    wait_for(firefox, has_text("#turns .turn.agent .text", "one two three four"), 10, "the call's transcript")
    assert firefox.execute_script(
        "return document.querySelector('#turns .turn.agent .text').textContent", sandbox=None
    ).startswith("Hello")
    assert record["audio"]
    duration = wait_for(firefox, "document.getElementById('audio').duration", 10, "the recording to load")
    assert duration > 5
    screenshot(firefox, "console")
    assert firefox.execute_script("return window.pageErrors", sandbox=None) == []
