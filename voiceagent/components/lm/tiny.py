"""A tiny GPT-2 with random weights, for tests and benchmarks: no trained GPT-2 weights install offline, but GPT-2's
shape, tokenizer and every code path that loads, runs and converts it can be exercised all the same."""

from __future__ import annotations

from pathlib import Path

from voiceagent import models
from voiceagent.errors import require
from voiceagent.models import build_once


def build_tiny_gpt2(folder: Path) -> Path:
    """Save into ``folder`` a 2-layer GPT-2 (64 wide, GPT-2's 1024 positions and 50257-token vocabulary), random
    weights from seed 0, with the real GPT-2 tokenizer: a transformers folder like a trained GPT-2's."""
    torch = require("torch", "lm")
    transformers = require("transformers", "lm")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=64, n_positions=1024, vocab_size=50257)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    transformers.GPT2TokenizerFast.from_pretrained(models.gpt2_tokenizer_dir()).save_pretrained(folder)
    return folder


def tiny_gpt2_dir() -> Path:
    """The tiny GPT-2, built once into ``<cache>/lm/tiny-gpt2/``."""
    return build_once(models.cache_dir() / "lm" / "tiny-gpt2", build_tiny_gpt2)
