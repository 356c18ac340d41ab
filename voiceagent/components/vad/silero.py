"""Silero VAD v6 as ONNX (the model file faster-whisper ships), run with onnxruntime: no torch needed."""

from __future__ import annotations

import numpy as np

from voiceagent.components.vad import VAD, SegmentRules
from voiceagent.errors import require

# The v6 model looks at each 512-sample frame with the 64 samples before it.
CONTEXT_SAMPLES = 64
# The model's state drifts over long silence until it misses speech (after 100 s of line hiss it no longer heard
# a question it finds at the start of a stream): after this many frames (5 s) with no speech, its state starts
# afresh. Checked only at multiples of this many frames since the stream began, so the decisions never depend
# on how the stream was chunked.
FRESH_STATE_AFTER_FRAMES = 156


class SileroVAD(VAD):
    """A small neural VAD: 32 ms frames, a speech probability each; the best of the three on noise."""

    frame_samples = 512

    def __init__(self, threshold: float = 0.5, model: str = "silero", rules: SegmentRules | None = None):
        super().__init__(rules, threshold)
        self.model = model
        self._session = None

    def load(self) -> None:
        if self._session is not None:
            return
        from voiceagent import models

        onnxruntime = require("onnxruntime")
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        options.log_severity_level = 4
        path = models.resolve("vad", self.model)
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.reset()

    def reset(self) -> None:
        super().reset()
        self._fresh_state()
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._frames_seen = 0
        self._frames_since_speech = 0

    def _fresh_state(self) -> None:
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)

    def frame_probabilities(self, frames: np.ndarray) -> np.ndarray:
        out = []
        start = 0
        while start < len(frames):
            position = self._frames_seen % FRESH_STATE_AFTER_FRAMES
            if position == 0 and self._frames_since_speech >= FRESH_STATE_AFTER_FRAMES:
                self._fresh_state()
            block = frames[start : start + FRESH_STATE_AFTER_FRAMES - position]
            probabilities = self._run(block)
            speech = np.flatnonzero(probabilities > self.threshold)
            self._frames_since_speech = (
                len(block) - 1 - speech[-1] if len(speech) else self._frames_since_speech + len(block)
            )
            self._frames_seen += len(block)
            out.append(probabilities)
            start += len(block)
        return np.concatenate(out)

    def _run(self, frames: np.ndarray) -> np.ndarray:
        previous = np.vstack([self._context, frames[:-1, -CONTEXT_SAMPLES:]])
        batch = np.concatenate([previous, frames], axis=1).astype(np.float32)
        out, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        self._context = frames[-1, -CONTEXT_SAMPLES:].copy()
        return out.reshape(-1).astype(np.float32)
