"""Audio as the rest of voiceagent sees it: float32 samples with their rate, read from files, resampled, written.

Knows nothing of models or calls. Files are read with libsndfile (wav, flac, ogg, mp3) and, for anything else
it cannot read, with FFmpeg's libraries through PyAV; headerless telephone captures (``.ulaw``/``.alaw``) are
G.711 at 8 kHz.
"""

from __future__ import annotations

import contextlib
import io
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voiceagent.errors import AudioError
from voiceagent.g711 import ALAW, MULAW

RAW_G711_SUFFIXES = {".ulaw": MULAW, ".ul": MULAW, ".mulaw": MULAW, ".alaw": ALAW, ".al": ALAW}


@dataclass(frozen=True)
class Audio:
    """PCM samples in [-1, 1]: shape (frames,) for mono or (frames, channels)."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self):
        if self.sample_rate <= 0:
            raise AudioError(f"invalid sample rate {self.sample_rate}")

    @property
    def channels(self) -> int:
        return 1 if self.samples.ndim == 1 else self.samples.shape[1]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    def channel(self, index: int) -> Audio:
        """One channel as mono audio."""
        if self.samples.ndim == 1:
            if index != 0:
                raise AudioError(f"mono audio has no channel {index}")
            return self
        return Audio(np.ascontiguousarray(self.samples[:, index]), self.sample_rate)

    def mono(self) -> Audio:
        """Channels averaged to one."""
        if self.samples.ndim == 1:
            return self
        return Audio(self.samples.mean(axis=1, dtype=np.float32), self.sample_rate)

    def resample(self, sample_rate: int) -> Audio:
        """A band-limited resampling (libsoxr, high quality) to another rate."""
        if sample_rate == self.sample_rate:
            return self
        import soxr

        if len(self.samples) == 0:
            return Audio(self.samples, sample_rate)
        out = soxr.resample(self.samples, self.sample_rate, sample_rate, quality="HQ")
        return Audio(out.astype(np.float32, copy=False), sample_rate)

    def pcm16(self) -> np.ndarray:
        """Samples as int16, clipped."""
        return (np.clip(self.samples, -1.0, 1.0) * 32767.0).round().astype(np.int16)

    def trim(self, threshold_dbfs: float = -45.0) -> Audio:
        """Without the quiet before the first and after the last 10 ms louder than ``threshold_dbfs``."""
        mono = self.mono().samples
        window = max(1, self.sample_rate // 100)
        count = len(mono) // window
        levels = np.sqrt(np.mean(mono[: count * window].reshape(count, window) ** 2, axis=1)) if count else []
        loud = np.flatnonzero(20 * np.log10(np.maximum(levels, 1e-10)) > threshold_dbfs)
        if len(loud) == 0:
            return Audio(self.samples[:0], self.sample_rate)
        return Audio(self.samples[loud[0] * window : (loud[-1] + 1) * window], self.sample_rate)

    def slice(self, start_s: float, end_s: float) -> Audio:
        """The part between two times, in seconds."""
        a, b = int(round(start_s * self.sample_rate)), int(round(end_s * self.sample_rate))
        return Audio(self.samples[max(a, 0) : max(b, 0)], self.sample_rate)

    @classmethod
    def from_pcm16(cls, pcm: bytes | np.ndarray, sample_rate: int) -> Audio:
        data = np.frombuffer(pcm, dtype=np.int16) if isinstance(pcm, (bytes, bytearray)) else pcm
        return cls(data.astype(np.float32) / 32768.0, sample_rate)


def phone_line(audio: Audio) -> Audio:
    """What a phone call delivers of some audio: mono, 8 kHz, through G.711 mu-law and back."""
    narrow = audio.mono().resample(MULAW.sample_rate)
    return Audio.from_pcm16(MULAW.decode(MULAW.encode(narrow.pcm16())), MULAW.sample_rate)


def _check_file(path: Path) -> None:
    """Raise AudioError unless ``path`` is a file with something in it."""
    if not path.exists():
        raise AudioError("no such file")
    if path.is_dir():
        raise AudioError("is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError("empty file")


def read_audio(path: str | Path) -> Audio:
    """Read an audio file, or raise AudioError saying in one line why it cannot be used."""
    path = Path(path)
    _check_file(path)
    codec = RAW_G711_SUFFIXES.get(path.suffix.lower())
    if codec is not None:
        audio = Audio.from_pcm16(codec.decode(path.read_bytes()), codec.sample_rate)
    else:
        audio = _read_with_libsndfile(path) or _read_with_ffmpeg(path)
    if len(audio.samples) == 0:
        raise AudioError("contains no audio (0 s)")
    return audio


def _read_with_libsndfile(path: Path) -> Audio | None:
    import soundfile

    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=False)
    except (soundfile.LibsndfileError, RuntimeError, ValueError):
        return None
    return Audio(samples, rate)


@contextlib.contextmanager
def _ffmpeg_audio(path: Path):
    """The first audio stream of a file, through FFmpeg's libraries (PyAV): (container, stream, rate); their
    errors, and a file with no audio stream, as AudioError."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError("has no audio stream")
            stream = container.streams.audio[0]
            yield container, stream, stream.rate or stream.codec_context.sample_rate
    except av.FFmpegError as exc:
        raise AudioError(f"not a readable audio file ({exc.__class__.__name__})") from None


def _read_with_ffmpeg(path: Path) -> Audio:
    import av

    with _ffmpeg_audio(path) as (container, stream, rate):
        resampler = av.AudioResampler(format="flt", layout="mono" if stream.channels == 1 else "stereo")
        chunks = [
            out.to_ndarray().reshape(-1, out.layout.nb_channels)  # packed float: channels interleaved
            for frame in container.decode(stream)
            for out in resampler.resample(frame)
        ]
    if not chunks:
        raise AudioError("contains no audio (0 s)")
    samples = np.concatenate(chunks).astype(np.float32)
    return Audio(samples[:, 0] if samples.shape[1] == 1 else samples, rate)


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says of its audio."""

    duration_s: float | None  # None when the container does not say (a stream without an index)
    sample_rate: int
    channels: int


#: Frames ``probe_audio`` decodes: enough to find a file whose header is fine but whose audio is not.
PROBE_FRAMES = 4096


def probe_audio(path: str | Path) -> AudioInfo:
    """The duration, rate and channels of an audio file from its header, once its first frames decode; or
    AudioError as ``read_audio`` would raise it. Reads a few kilobytes, whatever the file's size: a check of an
    upload, leaving the decoding of the whole to whoever uses it."""
    path = Path(path)
    _check_file(path)
    codec = RAW_G711_SUFFIXES.get(path.suffix.lower())
    if codec is not None:  # headerless: every byte is a sample
        return AudioInfo(path.stat().st_size / codec.sample_rate, codec.sample_rate, 1)
    info = _probe_with_libsndfile(path) or _probe_with_ffmpeg(path)
    if info.duration_s == 0:
        raise AudioError("contains no audio (0 s)")
    return info


def _probe_with_libsndfile(path: Path) -> AudioInfo | None:
    import soundfile

    try:
        with soundfile.SoundFile(str(path)) as f:
            f.read(min(f.frames, PROBE_FRAMES), dtype="float32")  # a codec that cannot decode them fails here
            return AudioInfo(f.frames / f.samplerate, f.samplerate, f.channels)
    except (soundfile.LibsndfileError, RuntimeError, ValueError):
        return None


def _probe_with_ffmpeg(path: Path) -> AudioInfo:
    import av

    with _ffmpeg_audio(path) as (container, stream, rate):
        if next(container.decode(stream), None) is None:
            raise AudioError("contains no audio (0 s)")
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = None
        return AudioInfo(duration, rate, stream.channels)


def wav_bytes(audio: Audio) -> bytes:
    """16-bit PCM WAV file contents."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(audio.channels)
        wav.setsampwidth(2)
        wav.setframerate(audio.sample_rate)
        wav.writeframes(audio.pcm16().tobytes())
    return buffer.getvalue()


def write_wav(path: str | Path, audio: Audio) -> Path:
    """Write 16-bit PCM WAV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(audio))
    return path
