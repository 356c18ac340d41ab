import numpy as np
import pytest
from conftest import STEADY_PIPER, words

from voiceagent.components.tts import create_tts, split_sentences
from voiceagent.errors import ConfigError, ModelNotFound

TEXT = "Your order has shipped. It will arrive on Tuesday! Anything else?"


def test_split_sentences():
    assert split_sentences(TEXT) == ["Your order has shipped.", "It will arrive on Tuesday!", "Anything else?"]
    assert split_sentences("  \n ") == []
    assert split_sentences("Right. ... ?! Okay.") == ["Right.", "Okay."]  # nothing to say in "... ?!"
    assert split_sentences("No full stop") == ["No full stop"]
    assert split_sentences("Line one\nLine two. 你好。再见") == ["Line one", "Line two.", "你好。再见"]


@pytest.mark.parametrize("backend", ["piper", "espeak"])
def test_one_chunk_per_sentence_at_the_voices_rate(backend):
    tts = create_tts(backend)
    chunks = list(tts.synthesize(TEXT))
    assert len(chunks) == 3
    assert {c.sample_rate for c in chunks} == {tts.sample_rate} == {22050}
    for chunk in chunks:
        assert chunk.samples.dtype == np.float32 and np.isfinite(chunk.samples).all()
        assert 0.3 < chunk.duration_s < 4.0 and np.abs(chunk.samples).max() > 0.05


@pytest.mark.parametrize("backend", ["piper", "espeak"])
def test_resampled_for_the_phone(backend):
    (chunk,) = create_tts(backend).synthesize("Hello there.", sample_rate=8000)
    assert chunk.sample_rate == 8000 and 0.4 < chunk.duration_s < 3.0


def test_espeak_speaks_other_languages():
    (chunk,) = create_tts("espeak", voice="cmn").synthesize("你好，欢迎致电。")
    assert chunk.duration_s > 0.5
    with pytest.raises(ConfigError, match="no voice 'klingon'"):
        create_tts("espeak", voice="klingon").load()


def test_unknown_piper_voice(tmp_path):
    with pytest.raises(ModelNotFound, match="unknown tts model"):
        create_tts("piper", voice="nobody").load()
    lonely = tmp_path / "voice.onnx"
    lonely.write_bytes(b"onnx")
    with pytest.raises(ModelNotFound, match=r"\.onnx\.json beside it"):
        create_tts("piper", voice=str(lonely)).load()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["piper", "espeak"])
def test_what_is_said_can_be_heard(backend, fast_asr):
    """Close the loop: synthesise, then recognise the words back."""
    steady = STEADY_PIPER if backend == "piper" else {}
    spoken = create_tts(backend, **steady).speak("Your order has shipped. Thank you for calling.", 8000)
    assert spoken.sample_rate == 8000
    heard = fast_asr.transcribe(spoken).text
    assert {"your", "order", "thank", "you", "for", "calling"} <= set(words(heard))


def test_steady_piper_gives_the_same_samples_every_time():
    tts = create_tts("piper", **STEADY_PIPER)
    first, second = (next(tts.synthesize("Your order has shipped.")).samples for _ in range(2))
    assert np.array_equal(first, second)
