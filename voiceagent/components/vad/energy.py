"""An energy gate: speech is any 20 ms frame louder than a fixed level. No model; fooled by any loud noise."""

from __future__ import annotations

import numpy as np

from voiceagent.components.vad import VAD, SegmentRules


class EnergyVAD(VAD):
    """Frames whose RMS level is above ``threshold_dbfs`` count as speech."""

    frame_samples = 320

    def __init__(self, threshold_dbfs: float = -40.0, rules: SegmentRules | None = None, threshold: float = 0.5):
        super().__init__(rules, threshold)
        self.threshold_dbfs = threshold_dbfs

    def frame_probabilities(self, frames: np.ndarray) -> np.ndarray:
        rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
        level_dbfs = 20 * np.log10(np.maximum(rms, 1e-10))
        return (level_dbfs > self.threshold_dbfs).astype(np.float32)
