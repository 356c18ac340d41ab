import numpy as np
import pytest
import soundfile

from voiceagent.audio import PROBE_FRAMES, Audio, probe_audio, read_audio, write_wav
from voiceagent.errors import AudioError


def tone(rate: int, seconds: float = 1.0, freq: float = 440.0, channels: int = 1) -> Audio:
    t = np.arange(int(rate * seconds)) / rate
    mono = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return Audio(np.stack([mono] * channels, axis=1) if channels > 1 else mono, rate)


@pytest.mark.parametrize(
    "name, rate, channels",
    [
        ("jfk.wav", 16000, 1),
        ("mary_48k.wav", 48000, 1),
        ("librispeech_61-70968-0000.flac", 16000, 1),
        ("common_voice_no.mp3", 48000, 1),
        ("call_stereo_22k.wav", 22050, 2),
        ("call_phone_8k_mulaw.wav", 8000, 1),
        ("call_phone_8k.ulaw", 8000, 1),
    ],
)
def test_reads_every_fixture_format(fixtures, name, rate, channels):
    audio = read_audio(fixtures / name)
    assert (audio.sample_rate, audio.channels) == (rate, channels)
    assert audio.samples.dtype == np.float32 and audio.duration_s > 0.5
    assert np.abs(audio.samples).max() <= 1.0


def test_ogg_round_trip(tmp_path):
    path = tmp_path / "t.ogg"
    soundfile.write(path, tone(44100).samples, 44100, format="OGG")
    audio = read_audio(path)
    assert audio.sample_rate == 44100 and abs(audio.duration_s - 1.0) < 0.05


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        (b"", "empty file"),
        (b"this is not audio at all" * 40, "not a readable audio file"),
    ],
)
@pytest.mark.parametrize("read", [read_audio, probe_audio])
def test_bad_files_give_one_clear_error(tmp_path, content, message, read):
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioError, match=message):
        read(path)


@pytest.mark.parametrize("read", [read_audio, probe_audio])
def test_zero_second_wav_is_an_error(tmp_path, read):
    path = write_wav(tmp_path / "empty.wav", Audio(np.zeros(0, np.float32), 16000))
    with pytest.raises(AudioError, match="no audio"):
        read(path)


def test_truncated_wav_keeps_what_is_there(tmp_path, fixtures):
    data = (fixtures / "jfk.wav").read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: len(data) // 2])
    audio = read_audio(path)
    assert 4.0 < audio.duration_s < 6.0


@pytest.mark.parametrize("read", [read_audio, probe_audio])
def test_folder_is_not_audio(tmp_path, read):
    with pytest.raises(AudioError, match="folder"):
        read(tmp_path)


@pytest.mark.parametrize(
    "name",
    [
        "jfk.wav",
        "mary_48k.wav",
        "librispeech_61-70968-0000.flac",
        "common_voice_no.mp3",
        "call_stereo_22k.wav",
        "call_phone_8k_mulaw.wav",
        "call_phone_8k.ulaw",
    ],
)
def test_a_probe_says_what_reading_the_file_gives(fixtures, name):
    info = probe_audio(fixtures / name)
    audio = read_audio(fixtures / name)
    assert (info.sample_rate, info.channels) == (audio.sample_rate, audio.channels)
    assert info.duration_s == pytest.approx(audio.duration_s, abs=0.06)


def test_a_probe_decodes_only_the_first_frames(tmp_path, monkeypatch):
    path = tmp_path / "long.ogg"
    soundfile.write(path, tone(16000, seconds=60).samples, 16000, format="OGG")
    decoded = []
    read = soundfile.SoundFile.read
    monkeypatch.setattr(soundfile.SoundFile, "read", lambda f, *a, **k: decoded.append(read(f, *a, **k)) or decoded[-1])
    info = probe_audio(path)
    assert info.duration_s == pytest.approx(60.0, abs=0.01) and info.sample_rate == 16000
    assert 0 < sum(len(chunk) for chunk in decoded) <= PROBE_FRAMES


@pytest.mark.parametrize("source_rate", [8000, 22050, 44100, 48000])
def test_resampling_keeps_the_tone_and_leaves_no_images(source_rate):
    """A real band-limited resampler: 8 kHz -> 16 kHz must not mirror energy above 4 kHz (sample repetition does)."""
    out = tone(source_rate, freq=1000).resample(16000)
    assert out.sample_rate == 16000 and len(out.samples) == 16000
    spectrum = np.abs(np.fft.rfft(out.samples * np.hanning(len(out.samples))))
    freqs = np.fft.rfftfreq(len(out.samples), 1 / 16000)
    assert abs(freqs[spectrum.argmax()] - 1000) < 5
    images = spectrum[freqs > 4200].max() / spectrum.max()
    assert images < 1e-3


def test_channels_and_mono():
    stereo = Audio(np.stack([np.ones(10, np.float32), -np.ones(10, np.float32)], axis=1), 8000)
    assert stereo.channels == 2
    assert stereo.channel(1).samples.tolist() == [-1.0] * 10
    assert stereo.mono().samples.tolist() == [0.0] * 10
    with pytest.raises(AudioError):
        Audio(np.zeros(10, np.float32), 8000).channel(1)


def test_invalid_rate():
    with pytest.raises(AudioError, match="sample rate"):
        Audio(np.zeros(10, np.float32), 0)


def test_wav_round_trip(tmp_path):
    audio = tone(22050, channels=2)
    back = read_audio(write_wav(tmp_path / "x.wav", audio))
    assert back.sample_rate == 22050 and back.channels == 2
    assert np.abs(back.samples - audio.samples).max() < 1e-4


def test_formats_libsndfile_cannot_read_go_through_ffmpeg(tmp_path):
    import av

    path = tmp_path / "stereo.m4a"
    source = tone(22050, channels=2)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=22050, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(source.samples.T), format="fltp", layout="stereo")
        frame.sample_rate = 22050
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    audio = read_audio(path)
    assert audio.sample_rate == 22050 and audio.channels == 2
    assert abs(audio.duration_s - 1.0) < 0.1
    info = probe_audio(path)
    assert (info.sample_rate, info.channels) == (22050, 2) and abs(info.duration_s - 1.0) < 0.1
    path.write_bytes(path.read_bytes()[:200])  # the header, no frames
    with pytest.raises(AudioError):
        probe_audio(path)
