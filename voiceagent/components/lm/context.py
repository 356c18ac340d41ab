"""The call's turn context packed into the model's window, and the streamed reply cut into speakable clauses.

Pure logic over a transformers tokenizer: no model is needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from voiceagent.components.lm import PromptTooLong
from voiceagent.errors import ConfigError

#: Where a "dialogpt" reply ends: the model starting the next line of the conversation.
DIALOGPT_STOPS = ("\nCustomer:", "\nAgent:")

_LABELS = {"caller": "Customer:", "agent": "Agent:"}
_CHAT_ROLES = {"caller": "user", "agent": "assistant"}


@dataclass(frozen=True)
class Turn:
    """One thing said in the call, by the caller or by the agent."""

    role: Literal["caller", "agent"]
    text: str

    def __post_init__(self):
        if self.role not in _LABELS:
            raise ValueError(f"a turn's role is 'caller' or 'agent', not {self.role!r}")


def stop_strings(style: str) -> tuple[str, ...]:
    """The stop strings a reply to a prompt of this style needs (a chat model ends its turn with its EOS token)."""
    return DIALOGPT_STOPS if style == "dialogpt" else ()


def pack_prompt(
    tokenizer,
    style: str,
    system: str,
    facts: str,
    turns: list[Turn],
    window: int,
    reply_budget: int,
) -> list[int]:
    """The prompt for the agent's next reply, at most ``window - reply_budget`` tokens.

    ``dialogpt`` style: ``system`` and ``facts`` as a header, then one ``Customer: ...`` / ``Agent: ...`` line per
    turn, ending with ``Agent:``. ``chat`` style: the tokenizer's chat template with ``system`` and ``facts`` as the
    system message (the template must render messages one after another, as ChatML, Llama 3 and Phi-3 do).

    The header is always kept (``PromptTooLong`` if it alone does not fit). The newest turns are kept, the oldest
    dropped first, a turn whole; a newest turn too long on its own is cut to its last tokens. Turns are tokenised
    one by one from the newest and only until the window is full, so a long call costs no more than a short one.
    """
    limit = window - reply_budget
    header = "\n".join(part.strip() for part in (system, facts) if part.strip())
    if style == "dialogpt":
        layout = _DialoGPT(tokenizer, header)
    elif style == "chat":
        layout = _Chat(tokenizer, header)
    else:
        raise ConfigError(f"unknown prompt style {style!r}: choose 'dialogpt' or 'chat'")
    room = limit - len(layout.head) - len(layout.tail)
    if room < 0:
        raise PromptTooLong(
            f"the system prompt and facts take {len(layout.head) + len(layout.tail)} tokens,"
            f" more than the {limit} a prompt may have"
        )
    kept: list[list[int]] = []
    for turn in reversed(turns):
        ids = layout.turn(turn)
        if len(ids) > room:
            if not kept:
                kept.append(layout.turn_tail(turn, room))
            break
        kept.append(ids)
        room -= len(ids)
    return layout.head + [i for ids in reversed(kept) for i in ids] + layout.tail


class _Layout:
    """How one prompt style lays out the header, each turn and the cue for the reply, as token ids."""

    head: list[int]
    tail: list[int]

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def turn(self, turn: Turn) -> list[int]:
        raise NotImplementedError

    def turn_tail(self, turn: Turn, room: int) -> list[int]:
        """The turn with only as much of the end of its text as fits in ``room`` tokens (maybe nothing)."""
        text_ids = self.tokenizer.encode(turn.text, add_special_tokens=False)
        keep = room - len(self.turn(Turn(turn.role, "")))
        while keep > 0:
            # A cut inside a character leaves U+FFFD at the start: drop it.
            text = self.tokenizer.decode(text_ids[-keep:]).lstrip("\ufffd")
            ids = self.turn(Turn(turn.role, text))
            if len(ids) <= room:
                return ids
            keep -= len(ids) - room  # decoding and encoding again may merge differently: shrink and retry
        return []


class _DialoGPT(_Layout):
    """Plain lines, for a model without a chat template (GPT-2). Every piece starts with a newline and the text
    before it ends in a non-space, so with a byte-level BPE (GPT-2's) the pieces tokenised apart give the ids the
    whole text would."""

    def __init__(self, tokenizer, header: str):
        super().__init__(tokenizer)
        self.head = tokenizer(header)["input_ids"]  # with a BOS where the tokenizer adds one
        self.tail = self._encode("\nAgent:")
        self._labels = {role: self._encode(f"\n{label}") for role, label in _LABELS.items()}

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def turn(self, turn: Turn) -> list[int]:
        text = " ".join(turn.text.split())  # one line per turn, whatever the ASR gave
        return self._labels[turn.role] + (self._encode(f" {text}") if text else [])


class _Chat(_Layout):
    """The tokenizer's chat template. A turn's ids are what rendering it adds after a system message; a
    one-character system message stands in for the real one, so a turn never costs a render of the header."""

    def __init__(self, tokenizer, header: str):
        super().__init__(tokenizer)
        self.head = self._render([{"role": "system", "content": header}])
        self.tail = self._render([{"role": "system", "content": header}], reply=True)[len(self.head) :]
        self._stand_in = [{"role": "system", "content": "-"}]
        self._stand_in_length = len(self._render(self._stand_in))

    def _render(self, messages: list[dict], reply: bool = False) -> list[int]:
        return list(
            self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=reply, return_dict=False)
        )

    def turn(self, turn: Turn) -> list[int]:
        message = {"role": _CHAT_ROLES[turn.role], "content": turn.text.strip()}
        return self._render(self._stand_in + [message])[self._stand_in_length :]


# A clause ends at . ! ? (with any closing quote or bracket) before a space, at , ; : before a space when it is
# long enough to say on its own, and at a line break.
_BOUNDARY = re.compile(r"[.!?]+[\"')\]]*(?=\s)|[,;:](?=\s)|\n")
# "Mr. Smith" is one clause, not two.
_ABBREVIATIONS = {"mr.", "mrs.", "ms.", "dr."}


class ClauseSplitter:
    """Cuts streamed reply text into clauses, each as soon as it ends, so speech can start on the first one."""

    def __init__(self, min_words: int = 4):
        #: Words a clause needs before , ; or : ends it (shorter ones sound choppy said alone).
        self.min_words = min_words
        self._text = ""

    def feed(self, piece: str) -> list[str]:
        """Add a piece of text; the clauses it completed, in order."""
        self._text += piece
        clauses = []
        start = 0
        for end in _BOUNDARY.finditer(self._text):
            clause = self._text[start : end.end()]
            words = clause.split()
            if end.group() in ",;:" and len(words) < self.min_words:
                continue
            if end.group() == "." and words and words[-1].lower() in _ABBREVIATIONS:
                continue
            start = end.end()
            if any(c.isalnum() for c in clause):
                clauses.append(clause.strip())
        self._text = self._text[start:]
        return clauses

    def flush(self) -> str | None:
        """The text after the last complete clause, at the end of the reply (None if there is nothing to say)."""
        rest, self._text = self._text.strip(), ""
        return rest if any(c.isalnum() for c in rest) else None
