"""Whisper through faster-whisper (CTranslate2): int8 on CPU, float16 on CUDA. The default ASR."""

from __future__ import annotations

import numpy as np

from voiceagent.components import resolve_device
from voiceagent.components.asr import ASR, Segment
from voiceagent.errors import ModelNotFound, require


class FasterWhisperASR(ASR):
    """``model``: a known name (``tiny.en``, ``base``), a CTranslate2 Whisper folder, or a hub id."""

    def __init__(
        self,
        model: str = "tiny.en",
        device: str = "auto",
        compute_type: str | None = None,
        beam_size: int = 1,
        threads: int = 2,
        workers: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.model = model
        self.device = device
        self.compute_type = compute_type
        self.beam_size = beam_size
        self.threads = threads
        #: Recognitions that run at once, each on ``threads`` threads (live calls: more than one call speaks).
        self.workers = workers
        self._whisper = None

    def load(self) -> None:
        super().load()
        if self._whisper is not None:
            return
        from voiceagent import models

        faster_whisper = require("faster_whisper")
        device = resolve_device(self.device, "ctranslate2")
        compute_type = self.compute_type or ("float16" if device == "cuda" else "int8")
        path = models.resolve("asr", self.model)
        try:
            self._whisper = faster_whisper.WhisperModel(
                str(path), device=device, compute_type=compute_type, cpu_threads=self.threads, num_workers=self.workers
            )
        except (OSError, RuntimeError, ValueError) as exc:  # no hub to fetch from, a corrupt model.bin...
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelNotFound(f"cannot load Whisper model {self.model!r}: {first_line}") from None

    def decode(self, samples: np.ndarray, language: str | None) -> tuple[list[Segment], str]:
        if not self._whisper.model.is_multilingual:
            language = "en"
        segments, info = self._whisper.transcribe(
            samples,
            language=language,
            beam_size=self.beam_size,
            condition_on_previous_text=False,
            vad_filter=False,  # speech gating is done once, by the ASR base class, with our own VAD
            no_speech_threshold=self.guard.no_speech_threshold,
            log_prob_threshold=self.guard.logprob_threshold,
        )
        return [
            Segment(round(s.start, 3), round(s.end, 3), s.text.strip(), s.avg_logprob, s.no_speech_prob)
            for s in segments
        ], info.language
