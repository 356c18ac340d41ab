"""Personal data in what voiceagent writes: redaction of card numbers, phone numbers and e-mail addresses, and the
deletion of call data (one caller's, or everything older than the retention period).

Only what is written or shown is redacted (call records, batch transcripts, logs); the dialogue core works on the
caller's own words in memory.

What counts, by kind:

- ``card``: a run of 13 to 19 digits, written ("4111 1111 1111 1111", "4111-1111-...") or said ("four one one
  one ...", "double one", "oh", or mixed) that passes the Luhn check, so an order number or a long reference is
  not taken for one. Near a card word ("card", "visa", "debit", ...) a run of 7 or more digits is a card whatever
  Luhn says: Whisper mishears a digit now and then, and 15 right digits of a real card are still that card; and a
  card being read out, in a partial transcript, shows no more than its first six digits (as much as PCI DSS lets
  be shown).
  A security code (3 or 4 digits after "security code", "CVV", ...) is a card too: it must never be stored.
- ``phone``: a run of 10 to 15 digits ("020 7946 0958", "(555) 123-4567", "oh seven seven double oh ..."), or 8 to
  15 after a "+" ("+44 20 7946 0958"). Shorter local numbers ("7946 0958") are left: they cannot be told from
  other numbers.
- ``email``: "jo@example.com", and as said: "jo dot smith at example dot co dot uk". SIP addresses
  ("sip:support@host") are addresses of the line, not of a person, and are kept.

Kept as they are: 4-digit order numbers, postcodes, amounts, dates and times (all under 10 digits), and digit runs
of 16 or more that fail Luhn away from a card word. A run is digits and number words with only spaces, commas,
dots, dashes, brackets or an "um" between them; a number said across two caller turns is two runs.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from voiceagent.dialogue.slots import parse_digits
from voiceagent.errors import ConfigError

KINDS = ("card", "phone", "email")
_REPEATS = {"double", "triple"}
_FILLERS = {"uh", "um", "er", "erm", "ah"}  # a caller reading out a number pauses; the run goes on
_SEPARATORS = re.compile(r"[\s,.\-()]+")
_CARD_WORDS = re.compile(r"\b(?:cards?|visa|master\s?card|amex|american express|credit|debit|maestro)\b", re.I)
_SECURITY_CODE_WORDS = re.compile(r"\b(?:cvv|cvc|cv2|security (?:code|number)|digits on the back)\b", re.I)
_CONTEXT_BEFORE, _CONTEXT_AFTER = 8, 4  # words around a run that count as "near" it

_EMAIL = re.compile(r"(?<![\w.+-])(?<!sip:)(?<!sips:)[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
# Each word of the mailbox is possessive (``++``): it never gives an underscore back to the separator, which would
# let "a_b_c_..." split in exponentially many ways (one log line could freeze the event loop).
_SPOKEN_EMAIL = re.compile(
    r"\b(?P<local>[\w+-]++(?:(?:\s+(?:dot|underscore|dash|hyphen)\s+|\.)[\w+-]++)*)"
    r"(?P<at>\s+at\s+|\s*@\s*)"
    r"[\w-]+(?:(?:\s+dot\s+|\.)[\w-]+)*(?:\s+dot\s+|\.)[a-z]{2,}\b",
    re.I,
)
# Words before a spoken "at" that are no mailbox: "I bought it at hollybrook dot com".
_NOT_MAILBOXES = set(
    "it me us you him her them we i that this there here home one shop order ordered bought buy look looked"
    " online site website email mail is was are be".split()
)


@dataclass(frozen=True)
class Redactor:
    """Hides personal data in text: each card number, phone number or e-mail address becomes "[card]", "[phone]"
    or "[email]". ``kinds`` says which; () redacts nothing."""

    kinds: tuple[str, ...] = KINDS

    def __post_init__(self):
        unknown = [kind for kind in self.kinds if kind not in KINDS]
        if unknown:
            raise ConfigError(f"[privacy] redact: unknown kind {unknown[0]!r} (known: {', '.join(KINDS)})")

    @classmethod
    def from_config(cls, table: dict) -> Redactor:
        """The redactor of a [privacy] table (``redact``: a list of kinds)."""
        kinds = table.get("redact", list(KINDS))
        if not isinstance(kinds, list) or not all(isinstance(kind, str) for kind in kinds):
            raise ConfigError(f"[privacy] redact must be a list of kinds ({', '.join(KINDS)}), not {kinds!r}")
        return cls(tuple(kinds))

    def text(self, text: str) -> str:
        """``text`` with each piece of personal data of ``kinds`` replaced by its kind in brackets."""
        if not self.kinds or not text:
            return text
        return "".join(piece if kind is None else f"[{kind}]" for piece, kind in self._pieces(text))

    def found(self, text: str) -> set[str]:
        """The kinds of personal data in ``text`` (of those this redactor hides)."""
        return {kind for _, kind in self._pieces(text) if kind is not None} if self.kinds and text else set()

    def data(self, value):
        """Any JSON-like value with every string in it redacted (dictionary keys kept)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.data(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(item) for item in value]
        return value

    def _pieces(self, text: str) -> list[tuple[str, str | None]]:
        """``text`` cut into pieces, each with the kind of personal data it is, or None."""
        spans = []
        if "email" in self.kinds:
            for pattern in (_EMAIL, _SPOKEN_EMAIL):
                for match in pattern.finditer(text):
                    if pattern is _SPOKEN_EMAIL and "@" not in match["at"]:
                        if match["local"].lower() in _NOT_MAILBOXES:
                            continue
                    spans.append((match.start(), match.end(), "email"))
        spans.extend(span for span in _number_spans(text) if span[2] in self.kinds)
        pieces, position = [], 0
        for start, end, kind in sorted(spans):
            if start < position:
                continue  # inside a span taken already (digits in an address)
            pieces += [(text[position:start], None), (text[start:end], kind)]
            position = end
        pieces.append((text[position:], None))
        return pieces


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check that every payment card number passes."""
    total = 0
    for index, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _is_number_word(word: str) -> bool:
    return word.isdigit() or (word.isalpha() and parse_digits(word) is not None)


def _runs(text: str) -> list[list[re.Match]]:
    """Runs of digits and number words: words with only separators (or a repeat word, an "um") between them."""
    runs: list[list[re.Match]] = []
    run: list[re.Match] = []
    for word in re.finditer(r"[A-Za-z0-9]+", text):
        lower = word[0].lower()
        joins = not run or _SEPARATORS.fullmatch(text[run[-1].end() : word.start()]) is not None
        if _is_number_word(lower) or (lower in _REPEATS | _FILLERS and run):
            if not joins:
                runs.append(run)
                run = []
            run.append(word)
        elif lower in _REPEATS:  # "double four ...": a run may start with a repeat
            runs.append(run)
            run = [word]
        else:
            runs.append(run)
            run = []
    runs.append(run)
    # A run starts and ends with a number ("four one two uh" ends at "two").
    trimmed = []
    for run in runs:
        while run and not _is_number_word(run[-1][0].lower()):
            run = run[:-1]
        if run:
            trimmed.append(run)
    return trimmed


def _near(before: str, after: str, pattern: re.Pattern) -> bool:
    """Whether a word of ``pattern`` is in the last words of ``before`` or the first of ``after``."""
    before = " ".join(before.split()[-_CONTEXT_BEFORE:])
    after = " ".join(after.split()[:_CONTEXT_AFTER])
    return pattern.search(before) is not None or pattern.search(after) is not None


def _holds_card(text: str, run: list[re.Match]) -> bool:
    """Whether some stretch of the run's words is a card number that passes Luhn (other digits may be beside it)."""
    for first in range(len(run)):
        for last in range(first, len(run)):
            digits = parse_digits(text[run[first].start() : run[last].end()]) or ""
            if len(digits) > 19:
                break
            if len(digits) >= 13 and luhn_valid(digits):
                return True
    return False


def _number_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of each run of digits that is a card or phone number."""
    spans = []
    runs = _runs(text)
    for index, run in enumerate(runs):
        start, end = run[0].start(), run[-1].end()
        # The words that count as near: up to the numbers on either side ("card 4111..., phone 020...").
        before = text[runs[index - 1][-1].end() if index else 0 : start]
        after = text[end : runs[index + 1][0].start() if index + 1 < len(runs) else len(text)]
        digits = parse_digits(text[start:end]) or ""
        count = len(digits)
        international = start > 0 and text[start - 1] == "+"
        if count >= 7 and _near(before, after, _CARD_WORDS) or count >= 13 and _holds_card(text, run):
            kind = "card"
        elif 3 <= count <= 4 and _near(before, after, _SECURITY_CODE_WORDS):
            kind = "card"
        elif 10 <= count <= 15 or international and 8 <= count <= 15:
            kind = "phone"
        else:
            continue
        if international or (start > 0 and text[start - 1] == "("):
            start -= 1
        spans.append((start, end, kind))
    return spans


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message (and its traceback) before any handler writes it."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a log call whose arguments do not fit its format: log what there is, never raise
            message = f"{record.msg} {record.args!r}" if record.args else str(record.msg)
        record.msg, record.args = self.redactor.text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.text(record.exc_text)
        return True


def redact_logs(redactor: Redactor, logger: logging.Logger | None = None) -> None:
    """Redact what every handler of ``logger`` (the root logger: every log line of the process) writes. A filter
    on a handler sees records from every logger below it; one on a logger would miss its children's."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(redactor))


# Deleting call data -------------------------------------------------------------------------------------------------


def record_name(call_id: str) -> str:
    """The file name stem of a call's record and audio: the id with anything but letters, digits, ``._-`` as _."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", call_id)[:120]


def _remove(path: Path) -> Path | None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    else:
        return None
    return path


def _purge_batch_call(folder: Path, call_id: str) -> list[Path]:
    """One call out of a batch output folder: its ``<call>/`` folder, its uploaded input (an input inside the
    folder, as the API's ``uploads/``; inputs elsewhere are the operator's), and its line of results.jsonl."""
    from voiceagent.batch import ResultsLog  # here, not at the top: voiceagent.batch imports this module

    removed = []
    results = ResultsLog.read(folder / "results.jsonl")
    listed = any(result.get("call") == call_id for result in results)
    call_folder = folder / call_id
    # Only a call's own folder: never the folder's other files (an API job's uploads/, job.json).
    is_call = listed or (call_folder / "transcript.json").is_file()
    if call_id and call_id not in (".", "..") and "/" not in call_id and call_folder.is_dir() and is_call:
        removed.append(_remove(call_folder))
    kept = [result for result in results if result.get("call") != call_id]
    for result in results:
        if result.get("call") == call_id and isinstance(result.get("file"), str) and result["file"]:
            source = Path(result["file"]).resolve()
            if source.is_relative_to(folder.resolve()) and (removed_input := _remove(source)):
                removed.append(removed_input)
    if len(kept) < len(results):
        ResultsLog.write(folder / "results.jsonl", kept)
        removed.append(folder / "results.jsonl")
    return removed


def purge_call(call_id: str, records: Path | None, batch_outputs: Iterable[Path] = ()) -> list[Path]:
    """Remove one call's data everywhere: its record ``<records>/<id>.json`` and audio ``<id>.wav``, and in each
    batch output folder its ``<call>/`` folder and its line of ``results.jsonl`` (rewritten atomically). What was
    removed (``results.jsonl`` where a line of it was)."""
    removed = []
    if records is not None:
        for suffix in (".json", ".wav", ".json.partial"):
            if path := _remove(records / f"{record_name(call_id)}{suffix}"):
                removed.append(path)
    for folder in batch_outputs:
        removed += _purge_batch_call(Path(folder), call_id)
    return removed


def _newest_mtime(path: Path) -> float:
    """The last time anything in ``path`` (a file, or a folder and everything under it) changed."""
    times = [path.stat().st_mtime]
    if path.is_dir():
        times += [p.stat().st_mtime for p in path.rglob("*")]
    return max(times)


def purge_older_than(
    days: float, records: Path | None, batch_outputs: Iterable[Path] = (), now: float | None = None
) -> list[Path]:
    """Remove call data last changed more than ``days`` ago: records and their audio in ``records``; in each batch
    output (or API job) folder, the whole folder when nothing in it is newer, else each call whose folder is old.
    What was removed."""
    from voiceagent.batch import ResultsLog  # here, not at the top: voiceagent.batch imports this module

    cutoff = (time.time() if now is None else now) - days * 86400
    removed = []
    if records is not None and records.is_dir():
        for path in sorted(records.iterdir()):
            if path.is_file() and path.suffix in (".json", ".wav", ".partial") and path.stat().st_mtime < cutoff:
                removed.append(_remove(path))
    for folder in map(Path, batch_outputs):
        if not folder.is_dir():
            continue
        if _newest_mtime(folder) < cutoff:
            removed.append(_remove(folder))
            continue
        for result in ResultsLog.read(folder / "results.jsonl"):
            call = result.get("call")
            if isinstance(call, str) and (folder / call).is_dir() and _newest_mtime(folder / call) < cutoff:
                removed += _purge_batch_call(folder, call)
    return removed


def job_folders(jobs: Path | None) -> list[Path]:
    """The folders of the API's batch jobs (each laid out like a ``voiceagent batch --out`` folder)."""
    if jobs is None or not jobs.is_dir():
        return []
    return sorted(path for path in jobs.iterdir() if path.is_dir())


def records_in(records: Path) -> list[dict]:
    """The call records in a folder, oldest first; a file that is no record is skipped."""
    found = []
    for path in sorted(records.glob("*.json")) if records.is_dir() else []:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(record, dict) and "call_id" in record:
            found.append(record)
    return sorted(found, key=lambda r: str(r.get("started_at", "")))
