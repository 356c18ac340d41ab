"""Voice activity detection: a speech decision for each short frame, and speech segments for a whole file.

A VAD is a stream: ``probabilities`` takes samples in any chunking, keeps the remainder of a frame for the next
call, and carries the model's state across calls, so the same object serves a live call and a recorded one.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from voiceagent.audio import Audio
from voiceagent.components import create_backend

BACKENDS = {
    "silero": "voiceagent.components.vad.silero:SileroVAD",
    "webrtc": "voiceagent.components.vad.webrtc:WebRtcVAD",
    "energy": "voiceagent.components.vad.energy:EnergyVAD",
}


@dataclass
class SegmentRules:
    """How frame decisions become speech segments."""

    #: Speech shorter than this is dropped (a click, a cough).
    min_speech_s: float = 0.25
    #: Gaps shorter than this are bridged (a breath inside a sentence).
    min_silence_s: float = 0.6
    #: Seconds added before and after each segment, so first and last sounds are not clipped.
    pad_s: float = 0.1


def decisions_to_segments(decisions: np.ndarray, frame_s: float, rules: SegmentRules) -> list[tuple[float, float]]:
    """Frame-level speech flags -> (start, end) seconds of speech, bridged, filtered and padded."""
    flags = np.concatenate([[False], np.asarray(decisions, dtype=bool), [False]])
    edges = np.flatnonzero(flags[1:] != flags[:-1])
    runs = [[start * frame_s, end * frame_s] for start, end in zip(edges[::2], edges[1::2])]
    merged: list[list[float]] = []
    for run in runs:
        if merged and run[0] - merged[-1][1] < rules.min_silence_s:
            merged[-1][1] = run[1]
        else:
            merged.append(run)
    total = len(decisions) * frame_s
    padded: list[tuple[float, float]] = []
    for s, e in merged:
        if e - s < rules.min_speech_s:
            continue
        s, e = round(float(max(0.0, s - rules.pad_s)), 3), round(float(min(total, e + rules.pad_s)), 3)
        if padded and s <= padded[-1][1]:
            padded[-1] = (padded[-1][0], e)  # padding made two segments touch: one segment
        else:
            padded.append((s, e))
    return padded


class VAD(ABC):
    """A voice activity detector over 16 kHz mono float32 samples."""

    sample_rate = 16000
    #: Samples in one decision frame.
    frame_samples: int = 480

    def __init__(self, rules: SegmentRules | None = None, threshold: float = 0.5):
        self.rules = rules or SegmentRules()
        #: A frame is speech when its probability exceeds this (webrtc and energy give only 0 or 1).
        self.threshold = threshold
        self._pending = np.zeros(0, dtype=np.float32)

    @property
    def frame_s(self) -> float:
        return self.frame_samples / self.sample_rate

    def load(self) -> None:
        """Load the model (imports the backend's library). Idempotent."""

    def stream(self) -> VAD:
        """A detector for one more stream (a call), sharing this one's loaded model."""
        self.load()
        fresh = copy.copy(self)
        fresh.reset()
        return fresh

    def reset(self) -> None:
        """Forget the stream so far (a new call or file)."""
        self._pending = np.zeros(0, dtype=np.float32)

    @abstractmethod
    def frame_probabilities(self, frames: np.ndarray) -> np.ndarray:
        """Speech probability of each row of ``frames`` (n, frame_samples), continuing the stream."""

    def probabilities(self, samples: np.ndarray) -> np.ndarray:
        """Speech probability of each whole frame the new samples complete; a partial frame waits for more."""
        self.load()
        data = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        whole = len(data) // self.frame_samples * self.frame_samples
        self._pending = data[whole:]
        if whole == 0:
            return np.zeros(0, dtype=np.float32)
        return self.frame_probabilities(data[:whole].reshape(-1, self.frame_samples))

    def frame_decisions(self, audio: Audio) -> np.ndarray:
        """Speech flag of each frame of a whole recording (any rate or channel count)."""
        self.reset()
        samples = audio.mono().resample(self.sample_rate).samples
        decisions = self.probabilities(samples) > self.threshold
        self.reset()
        return decisions

    def any_speech(self, audio: Audio, block_s: float = 0.5) -> bool:
        """Whether a recording holds any speech frame: stops at the first, so speech costs almost nothing."""
        self.reset()
        samples = audio.mono().resample(self.sample_rate).samples
        block = int(block_s * self.sample_rate)
        found = any(
            (self.probabilities(samples[i : i + block]) > self.threshold).any() for i in range(0, len(samples), block)
        )
        self.reset()
        return found

    def speech_segments(self, audio: Audio) -> list[tuple[float, float]]:
        """(start, end) seconds of each stretch of speech in a whole recording."""
        return decisions_to_segments(self.frame_decisions(audio), self.frame_s, self.rules)


def create_vad(backend: str = "silero", **options) -> VAD:
    """A VAD backend by name (``silero``, ``webrtc``, ``energy``) with its options."""
    return create_backend("vad", BACKENDS, backend, **options)
