"""A causal LM through transformers (torch, fp32): any ``AutoModelForCausalLM`` folder, GPT-2 included.

A GGUF file (how SmolLM2 ships) is dequantised once into a plain transformers folder in the cache: reading the
GGUF costs about 15 s, loading that folder well under one. The CTranslate2 runtime converts from the same folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from voiceagent import models
from voiceagent.components import resolve_device
from voiceagent.components.lm import LanguageModel
from voiceagent.errors import ModelNotFound, require
from voiceagent.models import build_once


def hf_model(reference: str) -> Path | str:
    """An LM reference -> what transformers loads: a model folder, or a hub id. A GGUF file, or a folder that holds
    one and no ``config.json``, is dequantised once into ``<cache>/lm/<name>-hf/``."""
    path = models.resolve("lm", reference)
    if isinstance(path, str):
        return path
    if path.is_file() and path.suffix == ".gguf":
        gguf = path
    elif path.is_dir() and not (path / "config.json").exists():
        found = sorted(path.glob("*.gguf"))
        if len(found) != 1:
            raise ModelNotFound(f"{path}: no config.json, and {len(found)} GGUF files instead of one")
        gguf = found[0]
    else:
        return path
    name = reference if models.known_model("lm", reference) else gguf.stem
    return build_once(models.cache_dir() / "lm" / f"{name}-hf", lambda out: _dequantise(gguf, out))


def _dequantise(gguf: Path, out: Path) -> None:
    transformers = require("transformers", "lm")
    require("gguf", "lm")  # transformers reads GGUF files with it
    require("accelerate", "lm")  # and refuses a GGUF file without it
    from transformers.utils.quantization_config import GgufConfig

    where, name = str(gguf.parent), gguf.name
    # Asked to dequantise, transformers gives a plain fp32 model (left to itself it keeps the GGUF quantizer,
    # which cannot be saved, or where a GGUF matmul kernel is installed, the GGUF blocks themselves).
    model = transformers.AutoModelForCausalLM.from_pretrained(
        where, gguf_file=name, quantization_config=GgufConfig(dequantize=True)
    )
    model.save_pretrained(out)
    transformers.AutoTokenizer.from_pretrained(where, gguf_file=name).save_pretrained(out)


# Any of these in a folder means it has a tokenizer of its own.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def load_tokenizer(model: Path | str):
    """The tokenizer of a transformers model folder or hub id; GPT-2 weights saved without one get GPT-2's."""
    transformers = require("transformers", "lm")
    if isinstance(model, Path) and not any((model / name).exists() for name in _TOKENIZER_FILES):
        if transformers.AutoConfig.from_pretrained(model).model_type != "gpt2":
            raise ModelNotFound(f"{model}: no tokenizer files ({', '.join(_TOKENIZER_FILES)})")
        return transformers.GPT2TokenizerFast.from_pretrained(models.gpt2_tokenizer_dir())
    return transformers.AutoTokenizer.from_pretrained(str(model))


def eos_ids(config, generation_config, tokenizer) -> frozenset[int]:
    """Every token id that ends a reply: the model's and its generation config's EOS ids, and the tokenizer's."""
    ids = set()
    for value in (config.eos_token_id, getattr(generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        ids.update(value if isinstance(value, list) else [] if value is None else [value])
    return frozenset(ids)


class TransformersLM(LanguageModel):
    """The reference runtime: fp32 on CPU or CUDA, on ``threads`` torch threads (a process-wide setting).
    Sampling starts from ``seed`` on every call: the same prompt gets the same reply."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._model = None
        self._torch = None

    def load(self) -> None:
        if self._model is not None:
            return
        torch = require("torch", "lm")
        transformers = require("transformers", "lm")
        torch.set_num_threads(self.threads)
        device = resolve_device(self.device, "torch")
        source = hf_model(self.model)
        try:
            tokenizer = load_tokenizer(source)
            model = transformers.AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32)
        except (OSError, ValueError) as exc:  # no hub to fetch from, no weights in the folder...
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelNotFound(f"cannot load language model {self.model!r}: {first_line}") from None
        self._torch = torch
        self._tokenizer = tokenizer
        self._context_window = model.config.max_position_embeddings
        self._eos_ids = eos_ids(model.config, model.generation_config, tokenizer)
        self._model = model.to(device).eval()

    def tokens(self, prompt_ids: list[int], max_new_tokens: int) -> Iterator[int]:
        # A plain loop over the key/value cache rather than model.generate(): each id is computed only when the
        # reader asks for it, which is what makes stop strings and cancelling cost nothing more.
        torch = self._torch
        device = self._model.device
        sampler = torch.Generator().manual_seed(self.seed) if self.temperature > 0 else None
        input_ids = torch.tensor([prompt_ids], device=device)
        cache = None
        for _ in range(max_new_tokens):
            with torch.inference_mode():
                out = self._model(input_ids=input_ids, cache=cache, use_cache=True, logits_to_keep=1)
            cache = out.cache
            token_id = self._pick(out.logits[0, -1], sampler)
            yield token_id
            if token_id in self._eos_ids:
                return
            input_ids = torch.tensor([[token_id]], device=device)

    def _pick(self, logits, sampler) -> int:
        """Greedy at temperature 0, otherwise a nucleus (top-p) sample."""
        torch = self._torch
        if sampler is None:
            return int(logits.argmax())
        probs = torch.softmax(logits.float().cpu() / self.temperature, dim=-1)
        sorted_probs, order = probs.sort(descending=True)
        # Keep the most probable tokens until they hold top_p of the mass (the first one always).
        sorted_probs[(sorted_probs.cumsum(-1) - sorted_probs) >= self.top_p] = 0
        return int(order[torch.multinomial(sorted_probs, 1, generator=sampler)])
