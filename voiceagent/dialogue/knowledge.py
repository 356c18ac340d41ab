"""The business's FAQ and finding the entry a caller's sentence asks about (BM25, through ``bm25s``).

Callers ask in their own words ("what time do you open on saturday"), so each entry is found by its question,
its keywords (the other words callers use for it) and its answer together, the first two weighted double.
Below a minimum score nothing is returned: chatter ("the weather is nice") must not pull an answer the caller
never asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import bm25s

# A search must score at least this to return an entry. In the demo FAQ (13 entries) one of an entry's own
# keywords scores 1.1 or more, while a word that only turns up in some answer ("next", "years", "order") stays
# under 1: a caller's topic word is enough, a chance word is not.
MIN_SCORE = 1.0

# English function words, what callers say around a question ("hi, um, I was wondering...") and number words:
# words that say nothing about which entry is meant, so they neither match nor dilute a match. Numbers on a call
# are order numbers, dates and amounts; they must not find an answer that happens to say "five working days".
STOP_WORDS = frozenset(
    """
    zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
    seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand double
    a about after again all also am an and any are as at be because been before being but by can can't could
    couldn't did didn't do does doesn't doing don't for from had has have having he her here hers him his how i
    i'd i'll i'm i've if in into is isn't it it's its just me might my myself need no nor not of off on once only
    or other our ours out over own please same she should so some such than that that's the their theirs them
    then there there's these they this those through to too under until up very was wasn't we we're were what
    what's when where which while who why will with won't would wouldn't you you're your yours
    hi hello hey um uh er erm oh okay ok yeah yes well like really actually thanks thank wondering wonder want
    wanted get got know tell question ask asking much many bit sorry
    """.split()
)


def tokenize(text: str) -> list[str]:
    """Lower-case words (contractions kept whole) without stop words: the terms BM25 indexes and looks up."""
    words = re.findall(r"[a-z0-9]+(?:'[a-z]+)*", text.lower().replace("\u2019", "'"))
    return [word for word in words if word not in STOP_WORDS and not word.isdigit()]


@dataclass(frozen=True)
class FaqEntry:
    """One thing the business answers: its id, the question as a caller might ask it, the spoken answer."""

    id: str
    question: str
    answer: str
    keywords: tuple[str, ...] = ()


class KnowledgeBase:
    """The FAQ entries, indexed once for BM25 search."""

    def __init__(self, entries: Iterable[FaqEntry], min_score: float = MIN_SCORE):
        self.entries = tuple(entries)
        if not self.entries:
            raise ValueError("a knowledge base needs at least one entry")
        self.min_score = min_score
        self._index = bm25s.BM25()
        # The question and keywords count twice: they are the caller's words for the topic, while the answer is
        # the business's, longer, and full of words that could be about anything.
        documents = [" ".join((e.question, *e.keywords) * 2 + (e.answer,)) for e in self.entries]
        self._index.index([tokenize(document) for document in documents], show_progress=False)

    def search(self, query: str, limit: int = 2) -> list[tuple[FaqEntry, float]]:
        """The entries that best answer ``query``, best first, each with its score; none that score too low."""
        terms = tokenize(query)
        if not terms:
            return []
        scores = self._index.get_scores(terms)
        ranked = sorted(range(len(self.entries)), key=lambda i: (-scores[i], i))
        return [(self.entries[i], float(scores[i])) for i in ranked[:limit] if scores[i] >= self.min_score]
