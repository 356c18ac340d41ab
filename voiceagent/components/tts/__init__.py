"""Text to speech: text in, PCM out sentence by sentence, at the voice's rate or resampled on request."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np

from voiceagent.audio import Audio
from voiceagent.components import create_backend

BACKENDS = {
    "piper": "voiceagent.components.tts.piper:PiperTTS",
    "espeak": "voiceagent.components.tts.espeak:EspeakTTS",
    "coqui": "voiceagent.components.tts.coqui:CoquiTTS",
}

# A sentence ends at . ! ? (or their CJK forms) followed by space, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    """Cut text into the sentences a voice speaks one at a time; pieces with no word in them are dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if any(c.isalnum() for c in s)]


class TTS(ABC):
    """A voice. Subclasses synthesise one sentence; this class splits text and resamples."""

    #: The rate the voice produces; known after ``load()``.
    sample_rate: int

    def load(self) -> None:
        """Load the voice (imports the backend's library). Called once; idempotent."""

    @abstractmethod
    def synthesize_sentence(self, sentence: str) -> Audio:
        """Speak one sentence at the voice's own rate, mono."""

    def synthesize(self, text: str, sample_rate: int | None = None) -> Iterator[Audio]:
        """Speak ``text`` one sentence at a time, each resampled to ``sample_rate`` when given."""
        self.load()
        for sentence in split_sentences(text):
            audio = self.synthesize_sentence(sentence)
            yield audio.resample(sample_rate) if sample_rate else audio

    def speak(self, text: str, sample_rate: int | None = None) -> Audio:
        """The whole text as one piece of audio: what ``synthesize`` gives, joined (no samples if nothing to say)."""
        chunks = [audio.samples for audio in self.synthesize(text, sample_rate)]
        return Audio(np.concatenate(chunks) if chunks else np.zeros(0, np.float32), sample_rate or self.sample_rate)


def create_tts(backend: str = "piper", **options) -> TTS:
    """A TTS backend by name (``piper``, ``espeak``, ``coqui``) with its options."""
    return create_backend("tts", BACKENDS, backend, **options)
