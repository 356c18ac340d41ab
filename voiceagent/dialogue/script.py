"""Scripted callers: one caller turn a line, as ``voiceagent chat --script`` and the conversation tests read them.

A line is what the caller says; ``DTMF:4567#`` is a keypad entry instead; ``INTERRUPT 1.5: Stop, stop.`` is
said over the agent's reply, 1.5 s after it starts (live calls: ``voiceagent bench latency``, the engine tests;
in a text chat it is an ordinary turn); an empty line is a turn in which the caller said nothing; lines starting
with ``#`` are comments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from voiceagent.errors import VoiceAgentError


@dataclass(frozen=True)
class CallerTurn:
    text: str = ""
    dtmf: str | None = None
    #: Said this many seconds into the agent's reply, over it, instead of after it.
    interrupt_after_s: float | None = None


_INTERRUPT = re.compile(r"INTERRUPT\s+(\d+(?:\.\d+)?)\s*:\s*(.*)", re.IGNORECASE)


def parse_line(line: str) -> CallerTurn:
    line = line.strip()
    if line.upper().startswith("DTMF:"):
        keys = line[5:].strip()
        if not keys or any(k not in "0123456789*#ABCD" for k in keys.upper()):
            raise VoiceAgentError(f"not keypad keys: {line!r} (DTMF: takes 0-9, *, #, A-D)")
        return CallerTurn(dtmf=keys.upper())
    if interrupt := _INTERRUPT.fullmatch(line):
        return CallerTurn(text=interrupt[2], interrupt_after_s=float(interrupt[1]))
    return CallerTurn(text=line)


def read_script(path: str | Path) -> list[CallerTurn]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise VoiceAgentError(f"{path}: cannot read the script ({exc.__class__.__name__})") from None
    return [parse_line(line) for line in lines if not line.lstrip().startswith("#")]
