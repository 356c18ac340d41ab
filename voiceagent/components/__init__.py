"""The pipeline's stages (VAD, ASR, TTS), each a small interface with one module per backend.

A backend is cheap to construct; its heavy library (onnxruntime, ctranslate2, torch) is imported in ``load()``.
"""

from __future__ import annotations

import importlib

from voiceagent.errors import ConfigError

DEVICES = ("cpu", "cuda", "auto")


def cuda_available(engine: str) -> bool:
    """Whether ``engine`` (``ctranslate2``, ``torch`` or ``onnxruntime``) can run on an NVIDIA GPU here. Each
    backend asks its own engine: asking torch costs a quarter of a gigabyte where nothing else needs it."""
    try:
        if engine == "ctranslate2":
            import ctranslate2

            return ctranslate2.get_cuda_device_count() > 0
        if engine == "torch":
            import torch

            return torch.cuda.is_available()
        if engine == "onnxruntime":
            import onnxruntime

            return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except (ImportError, RuntimeError):
        return False
    raise ValueError(f"unknown engine {engine!r}")


def resolve_device(device: str, engine: str) -> str:
    """``cpu``, ``cuda`` or ``auto`` (cuda where ``engine`` sees a GPU) -> ``cpu`` or ``cuda``."""
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if cuda_available(engine) else "cpu"
    if device == "cuda" and not cuda_available(engine):
        raise ConfigError(f"device 'cuda' asked for, but {engine} sees no CUDA GPU")
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
