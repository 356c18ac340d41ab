"""Slot values from what a caller said, and values spoken back to them.

Whisper writes a number as digits ("4567", "45 67", "4,567") or as words ("four five six seven",
"forty-five sixty-seven"), depending on how it was said; the parsers here accept both. Nothing here does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from num2words import num2words

_UNITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")

# (kind, value) of each number word. "oh" and "nought" are zero as British callers say it in a number.
_NUMBER_WORDS: dict[str, tuple[str, int]] = {
    **{word: ("unit", value) for value, word in enumerate(_UNITS)},
    "oh": ("unit", 0),
    "o": ("unit", 0),
    "nought": ("unit", 0),
    **{word: ("teen", value) for value, word in enumerate(_TEENS, 10)},
    **{word: ("tens", value) for value, word in zip(range(20, 100, 10), _TENS)},
    "hundred": ("hundred", 100),
    "thousand": ("thousand", 1000),
}
_REPEATS = {"double": 2, "triple": 3}  # "double four" is 44
_ZERO_INTERJECTIONS = {"oh", "o"}  # "oh, it's four five..." is no zero: these count only beside another number

_NATO = {
    "alpha": "A", "alfa": "A", "bravo": "B", "charlie": "C", "delta": "D", "echo": "E", "foxtrot": "F",
    "golf": "G", "hotel": "H", "india": "I", "juliet": "J", "juliett": "J", "kilo": "K", "lima": "L",
    "mike": "M", "november": "N", "oscar": "O", "papa": "P", "quebec": "Q", "romeo": "R", "sierra": "S",
    "tango": "T", "uniform": "U", "victor": "V", "whiskey": "W", "whisky": "W", "xray": "X", "yankee": "Y",
    "zulu": "Z",
}  # fmt: skip
_SPELLED_DIGITS = {**{word: str(value) for value, word in enumerate(_UNITS)}, "oh": "0", "nought": "0"}


@dataclass
class _SpokenNumber:
    """A number being said in words, word by word: "one hundred and twelve", "forty-five"."""

    thousands: int = 0
    below: int = 0  # the part under a thousand
    last: str = ""  # the kind of the last word taken

    def extend(self, kind: str, value: int) -> bool:
        """Take the next word if it continues this number; False if it starts another ("forty-five | sixty")."""
        if kind in ("unit", "teen", "tens"):
            # A zero is always a digit of its own: "twenty oh five" is 2005, not 20 then 5.
            fits = value != 0 and (self.last in ("hundred", "thousand") or (kind == "unit" and self.last == "tens"))
            if fits:
                self.below += value
        elif kind == "hundred":
            fits = self.last in ("unit", "teen", "tens") and 0 < self.below < 100
            if fits:
                self.below *= 100
        else:
            fits = self.last in ("unit", "teen", "tens", "hundred") and self.below > 0 and not self.thousands
            if fits:
                self.thousands, self.below = self.below * 1000, 0
        if fits:
            self.last = kind
        return fits

    def __str__(self) -> str:
        return str(self.thousands + self.below)


def _is_number_token(token: str) -> bool:
    return token.isdigit() or token in _NUMBER_WORDS or token in _REPEATS


def parse_digits(text: str) -> str | None:
    """All the digits the caller said, in order, as one string; None when they said none.

    "four five six seven", "forty-five sixty-seven", "4,567" and "my order is 4 5 6 7 please" are all "4567";
    "double four one two" is "4412", "one hundred and twelve" is "112", "oh" and "zero" are "0".
    Each number said in words is one group ("forty-five" is 45), and the groups are written one after another.
    """
    tokens = re.findall(r"\d+|[a-z]+", text.lower())
    groups: list[str] = []
    spoken: _SpokenNumber | None = None
    repeat = 1

    def close() -> None:
        nonlocal spoken
        if spoken is not None:
            groups.append(str(spoken))
            spoken = None

    for index, token in enumerate(tokens):
        if token == "and":  # "one hundred and twelve"; between separate numbers it changes nothing either
            continue
        if token in _REPEATS:
            close()
            repeat = _REPEATS[token]
            continue
        if token in _ZERO_INTERJECTIONS:
            neighbours = tokens[max(index - 1, 0) : index] + tokens[index + 1 : index + 2]
            if len(tokens) > 1 and not any(_is_number_token(t) for t in neighbours):
                close()
                repeat = 1
                continue
        if token.isdigit():
            close()
            groups.append(token * repeat if len(token) == 1 else token)
        elif token in _NUMBER_WORDS:
            kind, value = _NUMBER_WORDS[token]
            if repeat > 1 and kind == "unit":
                close()
                groups.append(str(value) * repeat)
            elif spoken is None or not spoken.extend(kind, value):
                close()
                spoken = _SpokenNumber()
                if kind == "thousand":
                    spoken.thousands = value
                else:
                    spoken.below = value
                spoken.last = kind
        else:
            close()
        repeat = 1
    close()
    return "".join(groups) or None


def parse_spelled(text: str) -> str:
    """Letters and digits spelled out, upper-case and joined: "S W one A one A A" and "SW1A 1AA" are "SW1A1AA".

    Single letters, NATO words ("sierra whiskey"), digit words, "double"/"triple" and what Whisper already wrote
    as a code (upper-case or with digits) count; other words ("my postcode is") are left out.
    """
    tokens = re.findall(r"[A-Za-z0-9']+", re.sub(r"(?i)x-ray", "xray", text))
    pieces: list[str] = []
    repeat = 1
    for token in tokens:
        word = token.lower()
        if word in _REPEATS:
            repeat = _REPEATS[word]
            continue
        if word in _NATO:
            piece = _NATO[word]
        elif word in _SPELLED_DIGITS:
            piece = _SPELLED_DIGITS[word]
        elif "'" not in token and (len(token) == 1 or token.isupper() or any(c.isdigit() for c in token)):
            piece = token.upper()
        else:
            repeat = 1
            continue
        pieces.append(piece * repeat if len(piece) == 1 else piece)
        repeat = 1
    return "".join(pieces)


def normalize_postcode(text: str) -> str:
    """A postcode as compared: upper-case, letters and digits only ("sw1a 1aa" is "SW1A1AA")."""
    return re.sub(r"[^A-Z0-9]", "", text.upper())


# Phrases a caller answers a yes/no question with: True, False, or None for "I don't know". Longer phrases are
# matched first and taken out, so "not sure" is no "sure", "no problem" no "no", "don't know" no "don't"; of two
# as long, unsure goes first, then no ("I don't know" is unsure, "I do not" is no).
_ANSWERS: dict[str, bool | None] = {
    **dict.fromkeys(
        [
            "yes", "yeah", "yea", "yep", "yup", "aye", "sure", "please do", "yes please", "correct",
            "that's correct", "that's right", "right", "exactly", "absolutely", "definitely", "certainly",
            "of course", "go ahead", "go on", "ok", "okay", "alright", "all right", "fine", "indeed", "affirmative",
            "sounds good", "no problem", "no worries", "why not", "i do", "don't mind",
        ],
        True,
    ),
    **dict.fromkeys(
        [
            "no", "nope", "nah", "not", "don't", "dont", "do not", "no thanks", "no thank you", "wrong",
            "incorrect", "negative", "cancel that", "never mind", "not really", "not right", "not correct",
            "isn't", "it's not", "it is not", "that's not", "of course not", "absolutely not", "definitely not",
            "certainly not", "please don't", "leave it",
        ],
        False,
    ),
    **dict.fromkeys(
        [
            "don't know", "dont know", "do not know", "dunno", "not sure", "unsure", "no idea", "no clue",
            "maybe", "perhaps", "not certain", "can't remember", "don't remember", "i'm not sure",
        ],
        None,
    ),
}  # fmt: skip
_PRECEDENCE = {None: 0, False: 1, True: 2}
_ANSWER_PHRASES = sorted(_ANSWERS, key=lambda phrase: (-len(phrase.split()), _PRECEDENCE[_ANSWERS[phrase]]))


def parse_yes_no(text: str) -> bool | None:
    """True for a yes ("yeah", "please do", "correct"), False for a no ("nope", "cancel that"), None otherwise.

    Unsure answers ("I don't know", "not sure") and answers that say both are None, so the agent asks again.
    """
    padded = " " + " ".join(re.findall(r"[a-z']+", text.lower().replace("\u2019", "'"))) + " "
    found: set[bool | None] = set()
    for phrase in _ANSWER_PHRASES:
        if f" {phrase} " in padded:
            found.add(_ANSWERS[phrase])
            padded = padded.replace(f" {phrase} ", " | ")
    return found.pop() if len(found) == 1 else None


def digits_from_dtmf(keys: str) -> str:
    """The digits keyed on the phone pad: up to the first '#'; '*' clears what came before; A-D are ignored."""
    digits = ""
    for key in keys:
        if key == "#":
            break
        if key == "*":
            digits = ""
        elif key in "0123456789":
            digits += key
    return digits


def speak_digits(code: str) -> str:
    """A code read out one character at a time: "4567" is "four five six seven", "SW1A" is "S W one A"."""
    return " ".join(_UNITS[int(c)] if c.isdigit() else c.upper() for c in code if c.isalnum())


# (one, many) of the main unit, then of the hundredth, as said on the phone ("twenty-four pounds fifty").
_CURRENCIES = {
    "GBP": ("pound", "pounds", "penny", "pence"),
    "EUR": ("euro", "euros", "cent", "cents"),
    "USD": ("dollar", "dollars", "cent", "cents"),
}


def speak_amount(amount: float | Decimal, currency: str = "GBP") -> str:
    """An amount as said aloud: 24.5 is "twenty-four pounds fifty", 0.5 "fifty pence", 1 "one pound"."""
    try:
        major_one, major_many, minor_one, minor_many = _CURRENCIES[currency]
    except KeyError:
        raise ValueError(f"no spoken form for currency {currency!r}: use one of {', '.join(_CURRENCIES)}") from None
    cents = int((Decimal(str(amount)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if cents < 0:
        raise ValueError(f"cannot speak a negative amount: {amount}")
    major, minor = divmod(cents, 100)
    if not minor:
        return f"{num2words(major)} {major_one if major == 1 else major_many}"
    if not major:
        return f"{num2words(minor)} {minor_one if minor == 1 else minor_many}"
    return f"{num2words(major)} {major_one if major == 1 else major_many} {num2words(minor)}"


# English names whatever the process's locale (strftime's %A would follow it).
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def speak_date(day: date, with_year: bool = False) -> str:
    """A date as said aloud: "Tuesday the twenty-fifth of November" (and "twenty twenty-five" with the year)."""
    spoken = f"{_WEEKDAYS[day.weekday()]} the {num2words(day.day, to='ordinal')} of {_MONTHS[day.month - 1]}"
    return f"{spoken} {num2words(day.year, to='year')}" if with_year else spoken
