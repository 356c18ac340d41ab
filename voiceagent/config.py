"""Configuration: TOML files in ``configs/``, laid over the defaults, and the stages built from them."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

from voiceagent.errors import ConfigError

DEFAULT_CONFIG = Path(__file__).resolve().parent / "default.toml"


def _merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def load_config(path: str | Path | None = None) -> dict:
    """The default configuration, with the file at ``path`` laid over it."""
    config = read_toml(DEFAULT_CONFIG)
    return _merge(config, read_toml(Path(path))) if path else config


def build_vad(config: dict):
    """The VAD the config names."""
    from voiceagent.components.vad import SegmentRules, create_vad

    options = dict(config["vad"])
    rules = SegmentRules(**options.pop("segments", {}))
    return create_vad(options.pop("backend"), rules=rules, **options)


def build_asr(config: dict, **overrides):
    """The ASR the config names; ``overrides`` replace single options (``model="base"``)."""
    from voiceagent.components.asr import HallucinationGuard, create_asr

    options = {**config["asr"], **{k: v for k, v in overrides.items() if v is not None}}
    guard = HallucinationGuard(**options.pop("guard", {}))
    options["speech_gate"] = options.get("speech_gate") or None
    return create_asr(options.pop("backend"), guard=guard, **options)


def build_tts(config: dict, backend: str | None = None, voice: str | None = None):
    """The TTS the config names, or ``backend`` with its own defaults; ``voice`` replaces the voice."""
    from voiceagent.components.tts import create_tts

    options = dict(config["tts"])
    if backend and backend != options["backend"]:
        options = {"backend": backend}  # the config's voice means nothing to another backend
    if voice:
        options["voice"] = voice
    return create_tts(options.pop("backend"), **options)
