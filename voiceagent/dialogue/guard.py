"""The fact guard: a sentence from the language model is spoken only if every fact in it was licensed.

Facts are what a caller could act on wrongly if made up: numbers (as digits or words), amounts, dates (weekday
and month names), and order statuses. They are licensed by what the tools returned, the knowledge base entries
found, the domain's own texts and what the caller said on this call. A language model of 135 million parameters
invents order statuses readily; this check is why that never reaches the caller.
"""

from __future__ import annotations

import re

_NUMBER_WORDS = (
    "zero oh one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million "
    "first second third fourth fifth sixth seventh eighth ninth tenth twentieth thirtieth half double triple"
).split()
_DATE_WORDS = (
    "monday tuesday wednesday thursday friday saturday sunday today tomorrow yesterday january february march "
    "april may june july august september october november december"
).split()
_STATUS_WORDS = (
    "shipped dispatched delivered processing cancelled canceled refunded returned delayed lost arrived posted "
    "pounds pound pence penny dollars euros cents price"
).split()
FACT_WORDS = frozenset(_NUMBER_WORDS + _DATE_WORDS + _STATUS_WORDS)
# "one" and "second" are as often a pronoun or "just a second" as a number: only digits and the rest count.
_AMBIGUOUS = frozenset({"one", "second", "may", "oh", "half"})


def facts_in(text: str) -> set[str]:
    """The fact tokens of a text: digit strings (separators dropped, "4,567" = "4567") and fact words."""
    lowered = text.lower().replace("\u2019", "'")
    digits = {re.sub(r"[,.]", "", d) for d in re.findall(r"\d[\d,.]*\d|\d", lowered)}
    words = {w for w in re.findall(r"[a-z]+", lowered) if w in FACT_WORDS and w not in _AMBIGUOUS}
    return digits | words | ({"£"} if "£" in lowered else set())


class FactLicence:
    """The facts that may be spoken on one call, growing as tools answer and the caller speaks."""

    def __init__(self, *texts: str):
        self.allowed: set[str] = set()
        for text in texts:
            self.grant(text)

    def grant(self, text: str) -> None:
        self.allowed |= facts_in(text)

    def unlicensed(self, sentence: str) -> set[str]:
        """The facts in ``sentence`` that nothing licensed: empty means it may be spoken."""
        return facts_in(sentence) - self.allowed
