"""WebRTC's VAD (Google's GMM detector, through webrtcvad-wheels): 30 ms frames, microseconds each."""

from __future__ import annotations

import numpy as np

from voiceagent.components.vad import VAD, SegmentRules
from voiceagent.errors import ConfigError, require


class WebRtcVAD(VAD):
    """``aggressiveness`` 0 (keeps most speech) to 3 (drops most non-speech)."""

    frame_samples = 480

    def __init__(self, aggressiveness: int = 2, rules: SegmentRules | None = None, threshold: float = 0.5):
        super().__init__(rules, threshold)
        if aggressiveness not in (0, 1, 2, 3):
            raise ConfigError(f"webrtc VAD aggressiveness must be 0-3, not {aggressiveness!r}")
        self.aggressiveness = aggressiveness
        self._vad = None

    def load(self) -> None:
        if self._vad is None:
            self._vad = require("webrtcvad").Vad(self.aggressiveness)

    def reset(self) -> None:
        super().reset()
        self._vad = None  # the detector adapts to the stream: a new stream starts a new one
        self.load()

    def frame_probabilities(self, frames: np.ndarray) -> np.ndarray:
        pcm = (np.clip(frames, -1.0, 1.0) * 32767).astype(np.int16)
        return np.array([self._vad.is_speech(f.tobytes(), self.sample_rate) for f in pcm], dtype=np.float32)
