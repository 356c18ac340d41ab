import gc
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from servers import PulseAudio, Served

from voiceagent.audio import Audio

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "audio_fixtures"
#: A config that makes Piper's output the same every run, for tests that listen to what was said.
DETERMINISTIC = Path(__file__).resolve().parent / "deterministic.toml"
#: The same for voices made directly.
STEADY_PIPER = {"noise_scale": 0.0, "noise_w_scale": 0.0}


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, for comparing transcripts."""
    return "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()


def heard_words(asr, audio: Audio) -> str:
    """What a caller hears in ``audio``: lower-case words, numbers as digits run together ("1234" whether Whisper
    wrote "one two three four", "1, 2, 3, 4" or "1 234")."""
    text = " ".join(words(asr.transcribe(audio).text))
    for number, digit in zip("zero one two three four five six seven eight nine".split(), "0123456789"):
        text = re.sub(rf"\b{number}\b", digit, text)
    return re.sub(r"(?<=\d) (?=\d)", "", text)


@pytest.fixture
def domain_file(tmp_path) -> Path:
    """A copy of the demo domain with a database of its own: a cancelled order stays cancelled for one test only."""
    shutil.copy(ROOT / "configs" / "domains" / "shop.toml", tmp_path / "shop.toml")
    return tmp_path / "shop.toml"


SHORT_GREETING = "Hello, you're through to Hollybrook Home. How can I help?"


@pytest.fixture
def short_domain(domain_file) -> Path:
    """The test's own copy of the demo shop (its own database), with a short greeting: less waiting."""
    text = domain_file.read_text()
    domain_file.write_text(re.sub(r'^greeting = ".*"$', f'greeting = "{SHORT_GREETING}"', text, count=1, flags=re.M))
    return domain_file


@pytest.fixture
def domain(domain_file):
    from voiceagent.dialogue.domain import load_domain

    return load_domain(domain_file)


@pytest.fixture(scope="session")
def config() -> dict:
    """The default config with steady Piper (tests/deterministic.toml)."""
    from voiceagent.config import load_config

    return load_config(DETERMINISTIC)


@pytest.fixture(scope="session")
def voice(config):
    """Piper's joe, steady: the callers' voice in tests of live calls."""
    from voiceagent.config import build_tts

    return build_tts(config)


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def white_noise() -> Audio:
    """60 s of white noise at -20 dBFS."""
    rng = np.random.default_rng(1234)
    return Audio((rng.standard_normal(16000 * 60) * 0.1).astype(np.float32), 16000)


@pytest.fixture(scope="session")
def silence() -> Audio:
    return Audio(np.zeros(16000 * 60, dtype=np.float32), 16000)


@pytest.fixture(scope="session")
def fast_asr():
    """The default ASR (faster-whisper tiny.en int8), loaded once for the session."""
    from voiceagent.components.asr import create_asr

    asr = create_asr("faster-whisper", device="cpu")
    asr.load()
    return asr


@pytest.fixture
def cli(capsys):
    """Run the command line in-process: (exit code, stdout, stderr)."""
    from voiceagent.cli import main

    def run(*args: str):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session", autouse=True)
def models_dir(tmp_path_factory) -> Path:
    """Derived weights go to one cache per test session, never into the checkout's models/cache."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("models-cache")
        patch.setenv("VOICEAGENT_MODELS_DIR", str(path))
        yield path


@pytest.fixture
def serve(config, short_domain, tmp_path, fast_asr, caplog):
    """Start a ``Served`` server (``max_calls``, SIP options) with records in ``tmp_path / "records"``, no language
    model; at the end it stops, and must not have logged an error (an exception in a task, a handler that failed)."""
    from voiceagent.conversation.session import Engine
    from voiceagent.telephony.server import TelephonyServer

    running: list[Served] = []

    def start(max_calls: int = 8, **sip_options) -> Served:
        test_config = {**config, "dialogue": {**config["dialogue"], "domain": str(short_domain)}}
        engine = Engine.from_config(test_config, records=tmp_path / "records", no_lm=True)
        engine.asr = fast_asr
        api_options = {"jobs": str(tmp_path / "jobs")}
        server = TelephonyServer(engine, max_calls=max_calls, sip_options=sip_options, api_options=api_options)
        running.append(Served(server))
        return running[-1]

    yield start
    for served in running:
        served.stop()
    gc.collect()  # a failed task nobody awaited is logged when it is collected
    assert [r.getMessage() for r in caplog.get_records("call") if r.levelno >= logging.ERROR] == []


@pytest.fixture
def pulse(tmp_path):
    """A private PulseAudio server (see ``servers.PulseAudio``), stopped at the end."""
    missing = [tool for tool in ("pulseaudio", "pactl", "paplay", "parec") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run scripts/system-deps.sh")
    server = PulseAudio(tmp_path / "run")
    yield server
    server.stop()
