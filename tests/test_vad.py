import numpy as np
import pytest

from voiceagent.audio import read_audio
from voiceagent.components.vad import SegmentRules, create_vad, decisions_to_segments
from voiceagent.errors import ConfigError

FRAME_S = 0.02


def flags(pattern: str) -> np.ndarray:
    """'-' silence, '#' speech, one 20 ms frame each."""
    return np.array([c == "#" for c in pattern])


def test_segments_from_frame_decisions():
    rules = SegmentRules(min_speech_s=0.1, min_silence_s=0.1, pad_s=0.0)
    pattern = "-----" + "#" * 10 + "--" + "#" * 5 + "-" * 10 + "##" + "-" * 10 + "#" * 6
    # The 40 ms gap is bridged, the 40 ms burst dropped.
    assert decisions_to_segments(flags(pattern), FRAME_S, rules) == [(0.1, 0.44), (0.88, 1.0)]


def test_padding_stays_inside_the_recording():
    rules = SegmentRules(min_speech_s=0.0, min_silence_s=0.0, pad_s=0.5)
    assert decisions_to_segments(flags("###--###"), FRAME_S, rules) == [(0.0, 0.16)]
    assert decisions_to_segments(flags(""), FRAME_S, rules) == []
    assert decisions_to_segments(flags("--------"), FRAME_S, rules) == []


@pytest.mark.parametrize("backend", ["silero", "webrtc", "energy"])
def test_finds_the_speech_in_a_real_clip(fixtures, backend):
    vad = create_vad(backend)
    segments = vad.speech_segments(read_audio(fixtures / "jfk.wav"))
    assert segments, backend
    assert segments[0][0] < 1.0 and segments[-1][1] > 9.5
    speech = sum(e - s for s, e in segments)
    assert 6.0 < speech <= 11.0


@pytest.mark.parametrize("backend", ["silero", "webrtc", "energy"])
def test_no_speech_in_silence(silence, backend):
    assert create_vad(backend).speech_segments(silence) == []


def test_silero_hears_no_speech_in_white_noise(white_noise):
    """Only the neural VAD tells noise from speech; that is why it gates the ASR by default."""
    assert create_vad("silero").speech_segments(white_noise) == []
    assert create_vad("energy").speech_segments(white_noise) != []


@pytest.mark.parametrize("backend", ["silero", "webrtc", "energy"])
def test_streaming_in_odd_chunks_equals_whole_file(fixtures, backend):
    audio = read_audio(fixtures / "jfk.wav")
    vad = create_vad(backend)
    whole = vad.probabilities(audio.samples)
    vad.reset()
    pieces = np.concatenate([vad.probabilities(audio.samples[i : i + 777]) for i in range(0, len(audio.samples), 777)])
    np.testing.assert_allclose(pieces, whole, atol=1e-5)


def test_any_rate_and_channel_count(fixtures):
    vad = create_vad("silero")
    at_16k = vad.speech_segments(read_audio(fixtures / "call_mono_16k.wav"))
    at_8k = vad.speech_segments(read_audio(fixtures / "call_phone_8k_mulaw.wav"))
    assert len(at_16k) == len(at_8k) == 3
    assert all(abs(a[0] - b[0]) < 0.15 for a, b in zip(at_16k, at_8k))
    stereo = vad.speech_segments(read_audio(fixtures / "call_stereo_22k.wav").channel(0))
    assert len(stereo) == 3


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="aggressiveness"):
        create_vad("webrtc", aggressiveness=7)
    with pytest.raises(ConfigError, match="unknown vad backend"):
        create_vad("nope")
    with pytest.raises(ConfigError, match="unexpected keyword"):
        create_vad("energy", colour="blue")


@pytest.mark.parametrize("backend", ["silero", "webrtc", "energy"])
def test_any_speech(fixtures, silence, backend):
    vad = create_vad(backend)
    assert vad.any_speech(read_audio(fixtures / "five_five.wav"))
    assert not vad.any_speech(silence)
