"""The causal language model of the dialogue core: token ids in, text out piece by piece as it is generated.

Two runtimes share this interface: transformers (torch, fp32) and CTranslate2 (int8 on CPU, float16 on CUDA).
Both generate in lockstep with the reader: one model step per token asked for, so a stop string, a cancelled
turn (the caller barged in) or a reader that stops reading costs no further model steps.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator

from voiceagent.components import create_backend
from voiceagent.errors import VoiceAgentError

BACKENDS = {
    "transformers": "voiceagent.components.lm.transformers_lm:TransformersLM",
    "ctranslate2": "voiceagent.components.lm.ctranslate2_lm:CTranslate2LM",
}


class PromptTooLong(VoiceAgentError):
    """A prompt that leaves no room in the model's context window."""


class LanguageModel(ABC):
    """A causal LM. Subclasses load a model and generate token ids; this class decodes and applies stop strings.

    ``model`` is a known name (``smollm2-135m``), a local transformers folder (or a GGUF file, or a folder holding
    one), or a hub id where a hub is reachable. ``temperature=0`` is greedy decoding: the same prompt always gets
    the same reply. Above 0 tokens are sampled (nucleus ``top_p``), reproducibly from ``seed`` (see each runtime).
    """

    def __init__(
        self,
        model: str = "smollm2-135m",
        device: str = "auto",
        threads: int = 2,
        max_new_tokens: int = 60,
        temperature: float = 0.0,
        top_p: float = 0.9,
        seed: int = 0,
    ):
        self.model = model
        self.device = device
        self.threads = threads
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self._tokenizer = None
        self._context_window = 0
        #: Token ids that end a reply, set by ``load()``.
        self._eos_ids: frozenset[int] = frozenset()

    @abstractmethod
    def load(self) -> None:
        """Load the model and its tokenizer (imports the runtime's library). Idempotent."""

    @abstractmethod
    def tokens(self, prompt_ids: list[int], max_new_tokens: int) -> Iterator[int]:
        """The raw generation: one model step per token id, ending after an end-of-sequence id or
        ``max_new_tokens``. Closing the iterator ends the generation: no step runs that was not asked for."""

    @property
    def tokenizer(self):
        """The model's transformers tokenizer."""
        self.load()
        return self._tokenizer

    @property
    def context_window(self) -> int:
        """How many tokens (prompt and reply together) the model can attend to: 1024 for GPT-2."""
        self.load()
        return self._context_window

    @property
    def prompt_style(self) -> str:
        """``chat`` where the tokenizer has a chat template, ``dialogpt`` (plain ``Customer:``/``Agent:`` lines)
        otherwise; see ``voiceagent.components.lm.context.pack_prompt``."""
        return "chat" if self.tokenizer.chat_template else "dialogpt"

    def stream(
        self,
        prompt_ids: list[int],
        max_new_tokens: int | None = None,
        stop: tuple[str, ...] = (),
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """The reply to ``prompt_ids``, as text pieces while the tokens come. It ends at end-of-sequence, before
        the first of the ``stop`` strings (neither it nor anything after is given), after ``max_new_tokens``
        (the model's default when None; never past the context window), or as soon as ``cancel`` is set."""
        self.load()
        room = self.context_window - len(prompt_ids)
        if room <= 0:
            raise PromptTooLong(
                f"a {len(prompt_ids)}-token prompt leaves no room in a {self.context_window}-token window"
            )
        budget = min(self.max_new_tokens if max_new_tokens is None else max_new_tokens, room)
        decoder = _IncrementalDecoder(self.tokenizer)
        stops = _StopStrings(stop)
        token_ids = self.tokens(list(prompt_ids), budget)
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    return  # not even text held back for a possible stop string
                token_id = next(token_ids, None)
                if token_id is None or token_id in self._eos_ids:
                    break
                text, stopped = stops.push(decoder.push(token_id))
                if text:
                    yield text
                if stopped:
                    return
            tail = stops.flush(decoder.flush())
            if tail:
                yield tail
        finally:
            token_ids.close()

    def generate(
        self,
        prompt_ids: list[int],
        max_new_tokens: int | None = None,
        stop: tuple[str, ...] = (),
        cancel: threading.Event | None = None,
    ) -> str:
        """The whole reply of ``stream`` as one string."""
        return "".join(self.stream(prompt_ids, max_new_tokens, stop, cancel))


class _IncrementalDecoder:
    """Token ids -> text, one id at a time. A byte-level BPE token can hold part of a UTF-8 character; such text is
    held back until the character is complete. Each step decodes only the last few ids, never the whole reply."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix = 0  # the ids from here to _read give the context text already emitted
        self._read = 0

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        # Decoding from a little before the new ids keeps what tokenizers do at a word's start (SentencePiece
        # drops a leading space when a piece starts the text) out of the difference.
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return after[len(before) :]

    def flush(self) -> str:
        """What is left when generation ends, without a character cut off by the end."""
        before = self._decode(self._ids[self._prefix : self._read])
        return self._decode(self._ids[self._prefix :])[len(before) :].rstrip("\ufffd")


class _StopStrings:
    """Cuts streamed text before the first stop string. Text that could be the start of one is held back until
    the next pieces show whether it is."""

    def __init__(self, stop: tuple[str, ...]):
        self._stop = tuple(s for s in stop if s)
        self._held = ""

    def push(self, piece: str) -> tuple[str, bool]:
        """Text that is safe to give now, and whether a stop string was reached."""
        text = self._held + piece
        found = [i for i in (text.find(s) for s in self._stop) if i >= 0]
        if found:
            self._held = ""
            return text[: min(found)], True
        keep = max((k for s in self._stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep], False

    def flush(self, piece: str) -> str:
        """The rest at the end of generation: held text that never became a stop string is text."""
        text, _ = self.push(piece)
        text, self._held = text + self._held, ""
        return text


def create_lm(backend: str = "ctranslate2", **options) -> LanguageModel:
    """A language model runtime by name (``ctranslate2``, ``transformers``) with its options."""
    return create_backend("lm", BACKENDS, backend, **options)
