"""The pipeline's stages (VAD, ASR, TTS), each a small interface with one module per backend.

A backend is cheap to construct; its heavy library (onnxruntime, ctranslate2, torch) is imported in ``load()``.
"""

from __future__ import annotations

import importlib

from voiceagent.errors import ConfigError

DEVICES = ("cpu", "cuda", "auto")


def cuda_available() -> bool:
    """Whether an engine here can see an NVIDIA GPU (CTranslate2 first: it needs no torch)."""
    try:
        import ctranslate2

        if ctranslate2.get_cuda_device_count() > 0:
            return True
    except (ImportError, RuntimeError):
        pass
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def resolve_device(device: str) -> str:
    """``cpu``, ``cuda`` or ``auto`` (cuda where a GPU is seen) -> ``cpu`` or ``cuda``."""
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise ConfigError("device 'cuda' asked for, but no CUDA GPU is visible")
    return device


def create_backend(stage: str, backends: dict[str, str], name: str, **options):
    """Construct the backend ``name`` of a stage from ``{"name": "module:Class"}``, importing only that module."""
    if name not in backends:
        raise ConfigError(f"unknown {stage} backend {name!r}: choose one of {', '.join(sorted(backends))}")
    module_name, class_name = backends[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"{stage} backend {name!r}: {exc}") from None
