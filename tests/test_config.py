from pathlib import Path

import pytest

from voiceagent.config import build_asr, build_tts, build_vad, load_config
from voiceagent.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_build_every_stage():
    config = load_config()
    vad, asr, tts = build_vad(config), build_asr(config), build_tts(config)
    assert type(vad).__name__ == "SileroVAD" and vad.threshold == 0.5 and vad.rules.min_silence_s == 0.6
    assert type(asr).__name__ == "FasterWhisperASR" and asr.model == "tiny.en" and asr.threads == 2
    assert asr.guard.no_speech_threshold == 0.6 and asr.speech_gate == "silero"
    assert type(tts).__name__ == "PiperTTS" and tts.voice == "joe"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_every_example_config_builds(path):
    config = load_config(path)
    build_vad(config), build_asr(config), build_tts(config)


def test_backend_options_stay_with_their_backend(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[vad]\nbackend = "webrtc"\n[vad.webrtc]\naggressiveness = 3\n[asr]\nspeech_gate = ""\n')
    config = load_config(path)
    vad = build_vad(config)
    assert type(vad).__name__ == "WebRtcVAD" and vad.aggressiveness == 3
    assert build_asr(config).speech_gate is None
    assert build_tts(config, backend="espeak").voice == "en-us"  # espeak's own voice, not piper's
    assert build_tts(config, backend="espeak", voice="de").voice == "de"
    assert build_asr(config, model="base", device=None).model == "base"


def test_unknown_option_is_a_config_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[asr]\nbeam = 5\n")
    with pytest.raises(ConfigError, match="unexpected keyword argument 'beam'"):
        build_asr(load_config(path))
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "none.toml")
