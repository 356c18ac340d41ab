"""A causal LM through CTranslate2: int8 on CPU, float16 on CUDA, converted once from the transformers folder."""

from __future__ import annotations

import atexit
import hashlib
import queue
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

from voiceagent import models
from voiceagent.components import resolve_device
from voiceagent.components.lm import LanguageModel
from voiceagent.components.lm.transformers_lm import eos_ids, hf_model, load_tokenizer
from voiceagent.errors import ModelNotFound, require
from voiceagent.models import build_once

# A Generator that has run Python callbacks and is still alive when the interpreter shuts down can abort it
# ("terminate called without an active exception", about one exit in three here with 2 threads); one released
# before shutdown never does. So every loaded model lets go of its Generator at exit.
_LOADED: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _release_generators() -> None:
    for lm in list(_LOADED):
        lm._generator = None


def _cache_name(reference: str, source: Path | str) -> str:
    """The name of a model's conversions in the cache: a known name as it is; a hub id with ``--`` for ``/``; a
    folder by its name and a digest of its full path, so two folders both called ``model`` never share one."""
    if models.known_model("lm", reference) or isinstance(source, str):
        return reference.replace("/", "--")
    return f"{source.name}-{hashlib.sha1(str(source).encode()).hexdigest()[:8]}"


class CTranslate2LM(LanguageModel):
    """The fast runtime. ``compute_type`` defaults to int8 on CPU and float16 on CUDA; the weights are converted at
    that precision, once, into ``<cache>/lm/<name>-ct2-<compute_type>/``. ``threads`` is CTranslate2's own.
    Sampling is seeded once, at load: the same calls in the same order give the same replies."""

    def __init__(self, *args, compute_type: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.compute_type = compute_type
        self._generator = None

    def load(self) -> None:
        if self._generator is not None:
            return
        ctranslate2 = require("ctranslate2", "lm")
        transformers = require("transformers", "lm")
        device = resolve_device(self.device, "ctranslate2")
        compute_type = self.compute_type or ("float16" if device == "cuda" else "int8")
        source = hf_model(self.model)
        try:
            tokenizer = load_tokenizer(source)
            config = transformers.AutoConfig.from_pretrained(str(source))
        except (OSError, ValueError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelNotFound(f"cannot load language model {self.model!r}: {first_line}") from None
        try:
            generation_config = transformers.GenerationConfig.from_pretrained(str(source))
        except OSError:
            generation_config = None  # older models have none: the model config names the EOS

        def convert(out):
            converter = ctranslate2.converters.TransformersConverter(str(source))
            converter.convert(str(out), quantization=compute_type, force=True)

        # CTranslate2 has no per-call seed: each decoding thread seeds its sampler from this once, at first use.
        ctranslate2.set_random_seed(self.seed)
        folder = build_once(
            models.cache_dir() / "lm" / f"{_cache_name(self.model, source)}-ct2-{compute_type}", convert
        )
        self._generator = ctranslate2.Generator(
            str(folder), device=device, compute_type=compute_type, intra_threads=self.threads
        )
        self._tokenizer = tokenizer
        self._context_window = config.max_position_embeddings
        self._eos_ids = eos_ids(config, generation_config, tokenizer)
        _LOADED.add(self)

    def tokens(self, prompt_ids: list[int], max_new_tokens: int) -> Iterator[int]:
        # CTranslate2 decodes in its own thread and reports each token to a callback. The callback waits for the
        # reader to ask for the next token before it lets decoding go on, so generation never runs ahead of the
        # reader: closing this iterator stops the model where the reader stopped.
        ids: queue.Queue = queue.Queue()
        next_asked = threading.Semaphore(0)
        closed = threading.Event()

        def on_token(step) -> bool:
            ids.put(step.token_id)
            next_asked.acquire()
            return closed.is_set()  # True ends decoding

        def decode():
            try:
                self._generator.generate_batch(
                    [self.tokenizer.convert_ids_to_tokens(prompt_ids)],
                    max_length=max_new_tokens,
                    include_prompt_in_result=False,
                    end_token=sorted(self._eos_ids),
                    callback=on_token,
                    **self._sampling(),
                )
                ids.put(None)
            except Exception as exc:  # handed to the reader, raised there
                ids.put(exc)

        worker = threading.Thread(target=decode, daemon=True)
        worker.start()
        try:
            while (item := ids.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
                next_asked.release()
        finally:
            closed.set()
            next_asked.release()
            worker.join()

    def _sampling(self) -> dict:
        if self.temperature <= 0:
            return {"sampling_topk": 1}
        return {"sampling_topk": 0, "sampling_topp": self.top_p, "sampling_temperature": self.temperature}
