"""Speech recognition: Whisper through faster-whisper (CTranslate2) or openai-whisper, one interface.

Both backends see 16 kHz mono float32; this module converts any input to that with a real resampler, and
guards against Whisper's hallucinations on silence and noise: no speech found by the VAD means no words; Whisper
skips silences of ten seconds and more (so a two-hour recording with a minute of talk costs about a minute, in
time and memory);
and a segment is dropped when Whisper itself judges it non-speech (no-speech probability over a threshold while
its average log-probability is under another, Whisper's own rule) or when it lies outside every speech region.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field

import numpy as np

from voiceagent.audio import Audio
from voiceagent.components import create_backend
from voiceagent.components.vad import SegmentRules

SAMPLE_RATE = 16000

BACKENDS = {
    "faster-whisper": "voiceagent.components.asr.faster_whisper:FasterWhisperASR",
    "openai-whisper": "voiceagent.components.asr.openai_whisper:OpenAIWhisperASR",
}


# The gate is generous: it skips what is surely not speech (silence, faint hiss) and lets Whisper's own no-speech
# rule judge the rest. Whispering over a phone line scores 0.1-0.2 in Silero, white noise up to 0.25: a higher
# gate lost whispered callers and no noise got through either way (tested: white, pink, hum, clicks, babble).
GATE_THRESHOLD = 0.1
# Whisper decodes a recording whole, as bare faster-whisper does (cutting it changes what Whisper hears, and
# its words), except across silences long enough to be worth skipping: a call on hold, a two-hour recording.
GATE_RULES = SegmentRules(min_speech_s=0.0, min_silence_s=10.0, pad_s=1.0)
#: Recordings up to this long are decoded whole whenever they hold any speech (one Whisper window).
WHOLE_UP_TO_S = 30.0


@dataclass
class Segment:
    """A stretch of recognised speech, times in seconds from the start of the audio."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float


@dataclass
class Transcript:
    """What was said in one piece of audio."""

    text: str
    language: str
    duration_s: float
    segments: list[Segment] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class HallucinationGuard:
    """Thresholds that decide which of Whisper's segments are kept (Whisper's defaults)."""

    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    #: A segment must overlap speech found by the VAD by at least this many seconds.
    min_speech_overlap_s: float = 0.1

    def keep(self, segment: Segment, speech: list[tuple[float, float]]) -> bool:
        if not any(c.isalnum() for c in segment.text):
            return False  # "", "...", "." on noise: no words
        if segment.no_speech_prob > self.no_speech_threshold and segment.avg_logprob < self.logprob_threshold:
            return False
        overlap = sum(max(0.0, min(segment.end, e) - max(segment.start, s)) for s, e in speech)
        return overlap >= min(self.min_speech_overlap_s, (segment.end - segment.start) / 2)


class ASR(ABC):
    """A Whisper backend. Subclasses decode 16 kHz mono samples; this class prepares audio and applies the guard."""

    def __init__(self, speech_gate: str | None = "silero", guard: HallucinationGuard | None = None):
        self.speech_gate = speech_gate
        self.guard = guard or HallucinationGuard()
        self._gate_vad = None

    def load(self) -> None:
        """Load the model (imports the backend's library). Idempotent."""
        if self.speech_gate and self._gate_vad is None:
            from voiceagent.components.vad import create_vad

            self._gate_vad = create_vad(self.speech_gate, rules=GATE_RULES, threshold=GATE_THRESHOLD)
            self._gate_vad.load()

    @abstractmethod
    def decode(self, samples: np.ndarray, language: str | None) -> tuple[list[Segment], str]:
        """Recognise 16 kHz mono float32 samples: Whisper's segments and the language."""

    def transcribe(self, audio: Audio, language: str | None = None) -> Transcript:
        """Recognise speech in audio of any rate and channel count."""
        self.load()
        audio = audio.mono().resample(SAMPLE_RATE)
        whole = [(0.0, audio.duration_s)]
        gate = self._gate_vad.stream() if self._gate_vad is not None else None  # its own state: calls run at once
        if gate is None:
            regions = whole
        elif audio.duration_s <= WHOLE_UP_TO_S:
            regions = whole if gate.any_speech(audio) else []
        else:
            regions = gate.speech_segments(audio)
        if not regions:
            return Transcript("", language or "", audio.duration_s, [])
        kept: list[Segment] = []
        for start, end in regions:
            segments, language = self.decode(audio.slice(start, end).samples.astype(np.float32, copy=False), language)
            for segment in segments:  # times from the start of the whole recording
                segment.start, segment.end = round(segment.start + start, 3), round(segment.end + start, 3)
            kept += [s for s in segments if self.guard.keep(s, regions)]
        text = " ".join(s.text.strip() for s in kept)
        return Transcript(text, language, audio.duration_s, kept)


def create_asr(backend: str = "faster-whisper", **options) -> ASR:
    """An ASR backend by name (``faster-whisper``, ``openai-whisper``) with its options."""
    return create_backend("asr", BACKENDS, backend, **options)
