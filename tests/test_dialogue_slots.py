from datetime import date
from decimal import Decimal

import pytest

from voiceagent.dialogue.slots import (
    digits_from_dtmf,
    normalize_postcode,
    parse_digits,
    parse_spelled,
    parse_yes_no,
    speak_amount,
    speak_date,
    speak_digits,
)


@pytest.mark.parametrize(
    "text, digits",
    [
        ("four five six seven", "4567"),
        ("Four, five, six, seven.", "4567"),
        ("forty-five sixty-seven", "4567"),
        ("forty five sixty seven", "4567"),
        ("4567", "4567"),
        ("45 67", "4567"),
        ("4,567", "4567"),
        ("It's 45-67.", "4567"),
        ("my order is 4 5 6 7 please", "4567"),
        ("double four one two", "4412"),
        ("triple 9", "999"),
        ("double oh seven", "007"),
        ("oh", "0"),
        ("zero", "0"),
        ("one two oh four", "1204"),
        ("twenty oh five", "2005"),
        ("one hundred and twelve", "112"),
        ("two thousand and five", "2005"),
        ("four thousand five hundred sixty seven", "4567"),
        ("nineteen ninety nine", "1999"),
        ("twelve thirty four", "1234"),
        ("oh, it's four five six seven", "4567"),  # "oh" on its own is no zero
    ],
)
def test_parse_digits(text, digits):
    assert parse_digits(text) == digits


@pytest.mark.parametrize("text", ["", "hello", "I don't know it", "oh no, I can't find it"])
def test_parse_digits_none(text):
    assert parse_digits(text) is None


@pytest.mark.parametrize(
    "text, spelled",
    [
        ("S W one A one A A", "SW1A1AA"),
        ("s w 1 a 1 a a", "SW1A1AA"),
        ("sierra whiskey one alpha one alpha alpha", "SW1A1AA"),
        ("SW1A 1AA", "SW1A1AA"),
        ("My postcode is M1 1AE.", "M11AE"),
        ("it's M one one A E", "M11AE"),
        ("M one one double A E", "M11AAE"),
        ("X-ray Yankee Zulu", "XYZ"),
    ],
)
def test_parse_spelled(text, spelled):
    assert parse_spelled(text) == spelled


def test_normalize_postcode():
    assert normalize_postcode("sw1a 1aa") == normalize_postcode(" SW1A1AA ") == "SW1A1AA"
    assert normalize_postcode("M1-1AE") == "M11AE"


@pytest.mark.parametrize(
    "text, answer",
    [
        ("yes", True),
        ("Yeah, sure.", True),
        ("please do", True),
        ("Correct.", True),
        ("That's right", True),
        ("yes I do", True),
        ("no problem", True),
        ("Yeah go ahead and cancel it", True),
        ("no", False),
        ("Nope.", False),
        ("don't", False),
        ("No, cancel that.", False),
        ("No, it is not", False),
        ("I do not", False),
        ("not really", False),
        ("of course not", False),
        ("I don't know", None),
        ("I don\u2019t know", None),
        ("not sure", None),
        ("no idea", None),
        ("Hmm, let me think", None),
        ("Yes. No, wait.", None),
        ("", None),
    ],
)
def test_parse_yes_no(text, answer):
    assert parse_yes_no(text) is answer


def test_digits_from_dtmf():
    assert digits_from_dtmf("4567#") == "4567"
    assert digits_from_dtmf("45#67") == "45"
    assert digits_from_dtmf("12*4567#") == "4567"
    assert digits_from_dtmf("4A5B67") == "4567"
    assert digits_from_dtmf("") == digits_from_dtmf("#") == digits_from_dtmf("12*") == ""


def test_speak_digits():
    assert speak_digits("4567") == "four five six seven"
    assert speak_digits("0") == "zero"
    assert speak_digits("SW1A 1AA") == "S W one A one A A"


@pytest.mark.parametrize(
    "amount, spoken",
    [
        (24.5, "twenty-four pounds fifty"),
        (Decimal("89.99"), "eighty-nine pounds ninety-nine"),
        (1, "one pound"),
        (1.05, "one pound five"),
        (0.5, "fifty pence"),
        (0.01, "one penny"),
        (0, "zero pounds"),
        (1234, "one thousand, two hundred and thirty-four pounds"),
    ],
)
def test_speak_amount(amount, spoken):
    assert speak_amount(amount) == spoken


def test_speak_amount_other_currencies():
    assert speak_amount(24.5, currency="EUR") == "twenty-four euros fifty"
    assert speak_amount(0.99, currency="USD") == "ninety-nine cents"
    with pytest.raises(ValueError, match="XYZ"):
        speak_amount(1, currency="XYZ")
    with pytest.raises(ValueError, match="negative"):
        speak_amount(-1)


def test_speak_date():
    assert speak_date(date(2025, 11, 25)) == "Tuesday the twenty-fifth of November"
    assert speak_date(date(2026, 11, 28)) == "Saturday the twenty-eighth of November"
    assert speak_date(date(2026, 3, 1), with_year=True) == "Sunday the first of March twenty twenty-six"
