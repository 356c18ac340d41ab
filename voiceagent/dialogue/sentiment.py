"""How the caller feels, from the words of a turn: VADER's lexicon and rules, no model, microseconds a turn."""

from __future__ import annotations

from functools import cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

# VADER's compound score at or below which a caller counts as frustrated. VADER's own authors put "negative" at
# -0.05, but a call about a parcel is full of mildly negative words ("I want to cancel my order" is -0.18).
FRUSTRATED_BELOW = -0.3


@cache
def _analyzer() -> SentimentIntensityAnalyzer:
    # Making one reads its 7,500-word lexicon file: once per process, on the first turn that needs it.
    return SentimentIntensityAnalyzer()


def caller_sentiment(text: str) -> float:
    """The caller's sentiment in one turn, from -1 (angry) through 0 (neutral) to 1 (pleased)."""
    return _analyzer().polarity_scores(text)["compound"]


def is_frustrated(score: float) -> bool:
    """Whether a sentiment score is low enough to treat the caller as frustrated (offer a person, say sorry)."""
    return score <= FRUSTRATED_BELOW
