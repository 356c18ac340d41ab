"""Coqui TTS: a model trained with Coqui (VITS, Glow-TTS, Tacotron 2, ...) from a folder the user supplies.

The folder is what Coqui's trainer writes: ``config.json`` and a checkpoint. Spectrogram models (Glow-TTS,
Tacotron 2) are turned into a waveform with Griffin-Lim; end-to-end models such as VITS give it directly.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from voiceagent.audio import Audio
from voiceagent.components import resolve_device
from voiceagent.components.tts import TTS
from voiceagent.errors import ModelNotFound, VoiceAgentError, require

# Checkpoint names in the order they are preferred: a released model, the trainer's best, then its latest step.
CHECKPOINT_NAMES = ("model.pth", "model_file.pth", "best_model.pth")
_STEP_CHECKPOINT = re.compile(r"checkpoint_(\d+)\.pth")


def find_checkpoint(model_dir: Path) -> Path | None:
    """The checkpoint to load from a Coqui model folder, or None when it holds none."""
    for name in CHECKPOINT_NAMES:
        if (model_dir / name).is_file():
            return model_dir / name
    steps = {}
    for path in model_dir.glob("checkpoint_*.pth"):
        if match := _STEP_CHECKPOINT.fullmatch(path.name):
            steps[int(match.group(1))] = path
    return steps[max(steps)] if steps else None


class CoquiTTS(TTS):
    """``voice``: a Coqui model folder (``config.json`` + ``model.pth``/``best_model.pth``/``checkpoint_<step>.pth``).

    ``speaker`` and ``language`` pick a voice of a multi-speaker or multilingual model by name.
    """

    def __init__(self, voice: str, device: str = "auto", speaker: str | None = None, language: str | None = None):
        self.voice = voice
        self.device = device
        self.speaker = speaker
        self.language = language
        self._model = None

    def load(self) -> None:
        if self._model is not None:
            return
        folder = Path(self.voice)
        if not folder.is_dir():
            raise ModelNotFound(f"{folder}: no such folder (a Coqui model folder holds config.json and model.pth)")
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise ModelNotFound(f"{folder}: no config.json in this Coqui model folder")
        checkpoint = find_checkpoint(folder)
        if checkpoint is None:
            raise ModelNotFound(f"{folder}: no checkpoint (model.pth, best_model.pth or checkpoint_<step>.pth)")

        _import_coqui()
        from TTS.config import load_config
        from TTS.tts.models import setup_model

        config = load_config(str(config_path))
        model = setup_model(config)
        # The call Coqui's own Synthesizer makes for a TTS checkpoint.
        model.load_checkpoint(config, checkpoint_path=str(checkpoint), eval=True)
        if resolve_device(self.device, "torch") == "cuda":
            model.cuda()
        self._do_trim_silence = bool(config.audio.get("do_trim_silence", False))
        self.sample_rate = int(config.audio.get("output_sample_rate") or config.audio["sample_rate"])
        self._model = model

    def synthesize_sentence(self, sentence: str) -> Audio:
        import torch

        with torch.no_grad():
            outputs = self._model.synthesize(
                sentence,
                speaker=self.speaker,
                language=self.language,
                use_griffin_lim=True,
                do_trim_silence=self._do_trim_silence,
            )
        samples = np.asarray(outputs["wav"], dtype=np.float32).reshape(-1)
        return Audio(np.clip(samples, -1.0, 1.0), self.sample_rate)


def _import_coqui():
    """Import Coqui, and torchaudio, which all its models import, with a one-line error for each way it fails."""
    tts = require("TTS", "coqui")
    try:
        import torchaudio  # noqa: F401
    except OSError as exc:  # e.g. PyPI's CUDA-linked torchaudio beside a CPU-only torch
        import torch

        raise VoiceAgentError(
            f"torchaudio cannot load its library ({exc}): "
            f"install the torchaudio build that matches torch {torch.__version__}"
        ) from exc
    return tts
