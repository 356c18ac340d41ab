"""Scripted callers: one caller turn a line, as ``voiceagent chat --script`` and the conversation tests read them.

A line is what the caller says; ``DTMF:4567#`` is a keypad entry instead; an empty line is a turn in which the
caller said nothing; lines starting with ``#`` are comments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from voiceagent.errors import VoiceAgentError


@dataclass(frozen=True)
class CallerTurn:
    text: str = ""
    dtmf: str | None = None


def parse_line(line: str) -> CallerTurn:
    line = line.strip()
    if line.upper().startswith("DTMF:"):
        keys = line[5:].strip()
        if not keys or any(k not in "0123456789*#ABCD" for k in keys.upper()):
            raise VoiceAgentError(f"not keypad keys: {line!r} (DTMF: takes 0-9, *, #, A-D)")
        return CallerTurn(dtmf=keys.upper())
    return CallerTurn(text=line)


def read_script(path: str | Path) -> list[CallerTurn]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise VoiceAgentError(f"{path}: cannot read the script ({exc.__class__.__name__})") from None
    return [parse_line(line) for line in lines if not line.lstrip().startswith("#")]
