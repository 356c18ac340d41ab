import json
import sys

import numpy as np
import pytest
from conftest import DETERMINISTIC, STEADY_PIPER, words

from voiceagent.audio import Audio, read_audio, write_wav


def test_models_json_lists_every_stage(cli):
    code, out, _ = cli("models", "--json")
    rows = json.loads(out)
    assert code == 0
    assert {r["stage"] for r in rows} >= {"asr", "vad", "tts"}
    for row in rows:
        assert set(row) >= {"stage", "name", "source", "size_mb", "license", "installed"}
    tiny = next(r for r in rows if r["name"] == "tiny.en")
    assert tiny["installed"] and tiny["size_mb"] > 50 and tiny["license"] == "MIT"


def test_models_table(cli):
    code, out, _ = cli("models")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["stage", "name", "installed"]


def test_transcribe_reports_each_bad_file_and_goes_on(cli, tmp_path, silence):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    quiet = write_wav(tmp_path / "quiet.wav", silence)
    code, out, err = cli("transcribe", empty, quiet, tmp_path / "missing.flac", "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert lines[0] == {"file": str(empty), "error": "empty file"}
    assert lines[1]["text"] == "" and lines[1]["segments"] == [] and lines[1]["duration_s"] == 60.0
    assert lines[2] == {"file": str(tmp_path / "missing.flac"), "error": "no such file"}
    assert err.count("voiceagent: ") == 2 and "empty.wav: empty file" in err


@pytest.mark.slow
def test_transcribe_json_contract(cli, fixtures):
    code, out, _ = cli("transcribe", fixtures / "jfk.wav", "--json")
    (result,) = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert set(result) == {"file", "text", "language", "duration_s", "segments"}
    assert set(result["segments"][0]) == {"start", "end", "text", "avg_logprob", "no_speech_prob"}
    assert "ask not what your country can do for you" in " ".join(words(result["text"]))


@pytest.mark.slow
def test_say_then_transcribe_at_phone_rate(cli, tmp_path):
    out_wav = tmp_path / "hello.wav"
    code, _, err = cli(
        "--config", DETERMINISTIC, "say", "Thank you for calling. How can I help you?", "-o", out_wav, "--rate", "8000"
    )
    assert code == 0 and "8000 Hz" in err
    assert read_audio(out_wav).sample_rate == 8000
    code, out, _ = cli("transcribe", out_wav)
    assert {"thank", "calling", "help"} <= set(words(out))


def test_say_with_espeak_in_french(cli, tmp_path):
    code, _, _ = cli(
        "say", "Bonjour, merci de votre appel.", "-o", tmp_path / "fr.wav", "--tts", "espeak", "--voice", "fr"
    )
    assert code == 0 and read_audio(tmp_path / "fr.wav").duration_s > 1.0


def test_clear_errors_for_bad_options(cli, tmp_path):
    code, _, err = cli("transcribe", tmp_path / "x.wav", "--model", "huge-v9")
    assert code == 2 and err.strip() == (
        "voiceagent: unknown asr model 'huge-v9': not a known name (tiny.en, base) nor an existing path"
    )
    code, _, err = cli("say", "   ", "-o", tmp_path / "x.wav")
    assert code == 2 and "nothing to say" in err
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("[asr\nmodel=")
    code, _, err = cli("--config", bad_config, "models")
    assert code == 2 and "not valid TOML" in err
    config = tmp_path / "c.toml"
    config.write_text('[vad]\nbackend = "webrtc"\ncolour = "blue"\n')
    code, _, err = cli("--config", config, "batch", tmp_path, "--out", tmp_path / "out", "--no-reply")
    assert code == 2 and "webrtc" in err and "colour" in err


def test_missing_optional_dependency_names_the_extra(monkeypatch, cli, tmp_path):
    monkeypatch.setitem(sys.modules, "whisper", None)
    code, _, err = cli("transcribe", tmp_path / "x.wav", "--backend", "openai-whisper")
    assert code == 2
    assert err.strip() == "voiceagent: whisper is not installed: pip install 'voiceagent[openai-whisper]'"


@pytest.mark.slow
def test_two_hour_recording(cli, tmp_path):
    """A 2-hour, 8 kHz phone recording: mostly silence with one question near the end; memory stays bounded."""
    import resource

    from voiceagent.components.tts import create_tts

    rate = 8000
    question = create_tts("piper", **STEADY_PIPER).speak("Where is my order?", rate).samples
    samples = np.zeros(2 * 3600 * rate, dtype=np.float32)
    at = (2 * 3600 - 30) * rate
    samples[at : at + len(question)] = question
    path = write_wav(tmp_path / "long.wav", Audio(samples, rate))
    code, out, _ = cli("transcribe", path, "--json")
    (result,) = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and result["duration_s"] == 7200.0
    assert {"where", "my", "order"} <= set(words(result["text"]))  # "Where's my order?" counts
    assert result["segments"][0]["start"] > 7100
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 3_000_000  # KiB: the CLI alone peaks at 1.3 GB
