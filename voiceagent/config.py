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


def stage_options(config: dict, stage: str, backend: str | None = None) -> tuple[str, dict, dict]:
    """(backend, its options, the stage's sub-tables that are no backend's) for one stage of a config."""
    from voiceagent.components import asr, tts, vad

    backends = {"vad": vad.BACKENDS, "asr": asr.BACKENDS, "tts": tts.BACKENDS}[stage]
    table = config[stage]
    backend = backend or table["backend"]
    common = {k: v for k, v in table.items() if k != "backend" and not isinstance(v, dict)}
    extra = {k: v for k, v in table.items() if isinstance(v, dict) and k not in backends}
    return backend, {**common, **table.get(backend, {})}, extra


def build_vad(config: dict):
    """The VAD the config names."""
    from voiceagent.components.vad import SegmentRules, create_vad

    backend, options, extra = stage_options(config, "vad")
    return create_vad(backend, rules=SegmentRules(**extra.get("segments", {})), **options)


def build_asr(config: dict, backend: str | None = None, **overrides):
    """The ASR the config names, or ``backend``; ``overrides`` replace single options (``model="base"``)."""
    from voiceagent.components.asr import HallucinationGuard, create_asr

    backend, options, extra = stage_options(config, "asr", backend)
    options.update({k: v for k, v in overrides.items() if v is not None})
    options["speech_gate"] = options.get("speech_gate") or None
    return create_asr(backend, guard=HallucinationGuard(**extra.get("guard", {})), **options)


def build_tts(config: dict, backend: str | None = None, voice: str | None = None):
    """The TTS the config names, or ``backend``; ``voice`` replaces the voice."""
    from voiceagent.components.tts import create_tts

    backend, options, _ = stage_options(config, "tts", backend)
    if voice:
        options["voice"] = voice
    return create_tts(backend, **options)


def build_lm(config: dict, backend: str | None = None, model: str | None = None):
    """The dialogue core's language model the config names, or ``backend`` / ``model``."""
    from voiceagent.components.lm import create_lm

    options = {k: v for k, v in config["lm"].items() if k != "backend"}
    if model:
        options["model"] = model
    return create_lm(backend or config["lm"]["backend"], **options)


def build_agent(
    config: dict, domain: str | None = None, backend: str | None = None, model: str | None = None, no_lm: bool = False
):
    """The dialogue core: the config's domain (or ``domain``) and language model, loaded; rules only with ``no_lm``."""
    from voiceagent.dialogue.agent import Agent
    from voiceagent.dialogue.domain import load_domain

    lm = None if no_lm else build_lm(config, backend=backend, model=model)
    if lm is not None:
        lm.load()
    return Agent(load_domain(domain_path(config, domain)), lm, reply_tokens=config["dialogue"]["reply_tokens"])


def domain_path(config: dict, domain: str | None = None) -> Path:
    """The domain file: as given, else relative to the voiceagent checkout (where configs/ lives)."""
    path = Path(domain or config["dialogue"]["domain"])
    if path.exists() or path.is_absolute():
        return path
    return Path(__file__).resolve().parents[1] / path
