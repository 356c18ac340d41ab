"""Piper: a neural voice as an ONNX file pair (``.onnx`` + ``.onnx.json``). The default, with the bundled voice."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voiceagent.audio import Audio
from voiceagent.components import resolve_device
from voiceagent.components.tts import TTS
from voiceagent.errors import ModelNotFound, require


class PiperTTS(TTS):
    """``voice``: a known name (``joe``) or the path of a Piper ``.onnx`` voice with its ``.onnx.json`` beside it.

    ``length_scale`` > 1 speaks slower. ``noise_scale`` and ``noise_w_scale`` are the random variation in voice
    and timing (the voice's own defaults when None); 0 for both makes the same text give the same samples.
    """

    def __init__(
        self,
        voice: str = "joe",
        device: str = "auto",
        speaker: int | None = None,
        length_scale: float | None = None,
        noise_scale: float | None = None,
        noise_w_scale: float | None = None,
    ):
        self.voice = voice
        self.device = device
        self.synthesis = {
            "speaker_id": speaker,
            "length_scale": length_scale,
            "noise_scale": noise_scale,
            "noise_w_scale": noise_w_scale,
        }
        self._voice = None

    def load(self) -> None:
        if self._voice is not None:
            return
        from voiceagent import models

        piper = require("piper")
        path = Path(models.resolve("tts", self.voice))
        config = Path(f"{path}.json")
        if path.suffix != ".onnx" or not config.exists():
            raise ModelNotFound(f"{path}: a Piper voice is an .onnx file with its .onnx.json beside it")
        use_cuda = resolve_device(self.device, "onnxruntime") == "cuda"
        self._voice = piper.PiperVoice.load(str(path), config_path=str(config), use_cuda=use_cuda)
        self._config = piper.SynthesisConfig(**self.synthesis)
        self.sample_rate = self._voice.config.sample_rate

    def synthesize_sentence(self, sentence: str) -> Audio:
        chunks = [c.audio_float_array for c in self._voice.synthesize(sentence, syn_config=self._config)]
        return Audio(np.concatenate(chunks) if chunks else np.zeros(0, np.float32), self.sample_rate)
