"""The call flow: what the agent says to each caller turn, grounded in the domain's knowledge and tools.

Facts come from tools and the knowledge base, in sentences this module writes; the language model phrases only
what has no fact in it (small talk, a friendly word), with the call's recent turns as context, and each of its
clauses passes the fact guard before it is spoken. The flow itself is rules over the call state: intents by
keyword, slots by the parsers in ``slots``, so the same call always takes the same path.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

from voiceagent.components.tts import split_sentences
from voiceagent.dialogue.domain import Domain
from voiceagent.dialogue.guard import FactLicence
from voiceagent.dialogue.sentiment import caller_sentiment, is_frustrated
from voiceagent.dialogue.shop import Order, OrderNotCancellable, ShopDatabase
from voiceagent.dialogue.slots import (
    digits_from_dtmf,
    parse_digits,
    parse_spelled,
    parse_yes_no,
    speak_amount,
    speak_date,
    speak_digits,
)
from voiceagent.dialogue.state import CallState, TurnRecord

# Intents by keyword, checked in this order: the first that matches wins.
INTENTS = (
    ("human", r"\b(human|real person|representative|operator|colleague|manager|(speak|talk) (to|with) (a |an )?"
              r"(someone|somebody|person|agent))\b"),
    ("goodbye", r"\b(bye|goodbye|that'?s all|that is all|nothing else|hang up|that'?s everything)\b"),
    ("cancel", r"\bcancel"),
    ("status", r"\b(where'?s|where is|status|track|tracking|orders?|parcel|package)\b"),
    # Chatter that shares a word with an FAQ entry ("how is your *day* going") is for the language model.
    ("small_talk", r"\bhow (are|is|was) (you|your|things)|\bhow'?s (it|your|things)|\btell me (something|a joke|about)|"
                   r"\b(nice|lovely) (day|weather)|\bwhat'?s your name"),
)  # fmt: skip
# A turn that stops on one of these is not finished: the caller is thinking or drawing breath.
UNFINISHED_ENDINGS = frozenset(
    "and or but so because the a an my our your his her their is it's was of to for with from at in on about um uh er "
    "erm".split()
)
FILLERS = frozenset("uh um er erm hmm mm ah oh eh hm like so well okay ok".split())
# Caller turns in a row that move nothing forward before the agent hands over to a person.
MAX_UNPRODUCTIVE_TURNS = 5
# Frustrated caller turns before the agent offers a person.
FRUSTRATION_BEFORE_OFFER = 2
MAX_FAILED_VERIFICATIONS = 2
# Small talk is a sentence or two on the phone; markdown means nothing when spoken.
MAX_SMALL_TALK_CLAUSES = 4
MARKDOWN = re.compile(r"[*_#`~|>\[\]]")
MENU = "I can check or cancel an order, or answer questions about delivery, returns and payment."
SMALL_TALK_RULES = (
    "Reply in one or two short, friendly sentences, as spoken on the phone. Never state order details, "
    "prices, dates or numbers, and never promise anything; offer to help with an order or a question instead."
)


def intent_of(text: str) -> str | None:
    lowered = text.lower().replace("\u2019", "'")
    return next((name for name, pattern in INTENTS if re.search(pattern, lowered)), None)


def _guarded_clauses(pieces: Iterator[str], licence: FactLicence) -> Iterator[str]:
    """The language model's text as speakable clauses, up to the first that fails the fact guard (or has no word
    in it, or would make the reply too long for speech): nothing after it is said, and generation stops."""
    from voiceagent.components.lm.context import ClauseSplitter

    splitter = ClauseSplitter()

    def clauses() -> Iterator[str]:
        for piece in pieces:
            yield from splitter.feed(piece)
        if rest := splitter.flush():
            yield rest

    for count, clause in enumerate(clauses()):
        clause = MARKDOWN.sub("", clause).strip()
        if count >= MAX_SMALL_TALK_CLAUSES or licence.unlicensed(clause) or not meaningful_words(clause):
            return
        yield clause


def _noting_first(pieces: Iterator[str], note: Callable[[], None]) -> Iterator[str]:
    for count, piece in enumerate(pieces):
        if count == 0:
            note()
        yield piece


def meaningful_words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in FILLERS]


class Agent:
    """A domain's phone agent. One Agent serves many calls; each call's state is a CallState."""

    def __init__(self, domain: Domain, lm=None, reply_tokens: int = 60):
        self.domain = domain
        self.shop = ShopDatabase(domain.database)
        self.lm = lm
        self.reply_tokens = reply_tokens

    def expects_more(self, state: CallState, text: str) -> bool:
        """Whether a caller who stopped after saying ``text`` (so far) probably has more to say: the words end
        on one that needs a next ("and", "my", "um"), or the agent asked for an order number or a postcode and
        the caller stopped on a digit or a letter of one that is not complete yet (callers pause while reading
        them out)."""
        words = re.findall(r"[a-z0-9']+", text.lower())
        if not words:
            return False
        if words[-1] in UNFINISHED_ENDINGS:
            return True
        if not (parse_digits(words[-1]) or len(words[-1]) == 1):
            return False
        if state.pending == "order_number":
            digits = parse_digits(text)
            return not (digits and self.shop.find_order(digits))
        if state.pending == "verification":
            return not self.shop.verify(self.shop.find_order(state.slots["order_number"]), postcode=parse_spelled(text))
        return False

    def with_database(self, database: Path) -> Agent:
        """The same agent (domain, model) over another copy of the shop's database: benchmarks replay calls on
        a fresh copy, so an order cancelled in one run is there again in the next."""
        return Agent(dataclasses.replace(self.domain, database=database), self.lm, self.reply_tokens)

    def greet(self, state: CallState) -> str:
        state.turns.append(TurnRecord("agent", self.domain.greeting))
        return self.domain.greeting

    def reply(self, state: CallState, text: str = "", dtmf: str | None = None) -> str:
        """The whole reply to one caller turn."""
        return " ".join(self.respond(state, text, dtmf))

    def respond(
        self, state: CallState, text: str = "", dtmf: str | None = None, cancel: threading.Event | None = None
    ) -> Iterator[str]:
        """The reply to one caller turn, clause by clause as each is ready. If ``cancel`` is set (the caller
        barged in), generation stops and the agent turn records only what was yielded."""
        if state.ended:
            return
        started = time.monotonic()
        text = " ".join(text.split())
        score = caller_sentiment(text) if text else 0.0
        caller = TurnRecord("caller", text, sentiment=round(score, 3), dtmf=dtmf, intent=intent_of(text))
        state.turns.append(caller)
        decided = self._decide(state, caller)
        timings: dict[str, float] = {}

        def first_token() -> None:
            timings.setdefault("first_token_ms", round((time.monotonic() - started) * 1000, 1))

        clauses = split_sentences(decided) if decided is not None else self._small_talk(state, cancel, first_token)
        said: list[str] = []
        agent = TurnRecord("agent", "", timings=timings)
        try:
            for clause in clauses:
                if cancel is not None and cancel.is_set():
                    break
                timings.setdefault("first_clause_ms", round((time.monotonic() - started) * 1000, 1))
                said.append(clause)
                yield clause
        finally:
            agent.text = " ".join(said)
            timings["total_ms"] = round((time.monotonic() - started) * 1000, 1)
            state.turns.append(agent)

    # The flow ------------------------------------------------------------------------------------------------

    def _decide(self, state: CallState, caller: TurnRecord) -> str | None:
        """A reply written from rules, tools and the knowledge base; None when the language model should answer."""
        frustrated = is_frustrated(caller.sentiment or 0.0)
        state.frustrated_turns += frustrated
        reply = self._flow(state, caller)
        if reply is None and caller.intent is None and (faq := self.domain.knowledge.search(caller.text, limit=1)):
            reply = faq[0][0].answer
        state.unproductive_turns = 0 if reply is not None else state.unproductive_turns + 1
        if state.unproductive_turns >= MAX_UNPRODUCTIVE_TURNS:
            return self._transfer(state, "no_progress", "I'm sorry I haven't been able to help. ")
        if frustrated and not state.human_offered and state.frustrated_turns >= FRUSTRATION_BEFORE_OFFER:
            state.human_offered = True
            state.pending = "confirm_transfer"
            return "I'm sorry this has been frustrating. Would you like me to put you through to a colleague?"
        if reply is None and len(meaningful_words(caller.text)) < 2:
            return "Sorry, I didn't catch that. " + (
                MENU if state.unproductive_turns >= 2 else "Could you say it again?"
            )
        return reply

    def _flow(self, state: CallState, caller: TurnRecord) -> str | None:
        """The reply when the turn moves the call forward (an intent, a slot, an answer); None otherwise."""
        text, intent = caller.text, caller.intent
        if intent == "human":
            return self._transfer(state, "caller_asked", "")
        if intent == "goodbye":
            state.ended = True
            state.actions.append({"type": "end_call"})
            return f"Thank you for calling {self.domain.name}. Goodbye!"
        answer = parse_yes_no(text)
        if state.pending == "confirm_transfer" and intent is None:
            if answer is None:
                return None
            state.pending = None
            return self._transfer(state, "frustration", "") if answer else "All right. " + MENU
        if state.pending == "confirm_cancel" and intent is None:
            return self._confirm_cancel(state, answer)
        number = digits_from_dtmf(caller.dtmf) if caller.dtmf else parse_digits(text)
        number = number if number and 3 <= len(number) <= 8 else None
        if intent in ("cancel", "status"):
            new_request = state.goal is None
            state.goal = intent
            if new_request and number is None and "order_number" in state.slots:
                state.pending = "confirm_number"
                return f"Is that for order {speak_digits(state.slots['order_number'])}?"
        if state.goal is None:
            return None
        if state.pending == "confirm_number" and number is None:
            if answer is None:
                return None
            state.pending = None
            if not answer:
                state.slots.pop("order_number")
                state.slots.pop("verified", None)
        if state.pending == "verification" and intent is None and caller.dtmf is None:
            return self._verify(state, text)
        if number and (intent is not None or state.pending in ("order_number", "confirm_number")):
            if number != state.slots.get("order_number"):
                state.slots.pop("verified", None)  # verification is for one order
            state.slots["order_number"] = number
        elif state.pending == "order_number" and intent is None:
            return None
        return self._advance(state)

    def _advance(self, state: CallState) -> str:
        """The next step toward the caller's goal once the slots are as they are."""
        number = state.slots.get("order_number")
        if number is None:
            state.pending = "order_number"
            return "Sure. What's your order number? You can say it or key it in, followed by the hash key."
        order = self.shop.find_order(number)
        if order is None:
            state.slots.pop("order_number")
            state.pending = "order_number"
            return f"I can't find an order with the number {speak_digits(number)}. Could you check it and say it again?"
        if not state.slots.get("verified"):
            state.pending = "verification"
            return (
                f"Thanks, that's order {speak_digits(number)}. For security, what's the postcode or the full name on "
                "the order?"
            )
        state.pending = None
        if state.goal == "cancel":
            if order.status != "processing":
                state.goal = None
                refusal = "It can't be cancelled now, but it can be returned within thirty days."
                return f"{self._status_sentence(order)} {refusal}"
            state.pending = "confirm_cancel"
            return (
                f"Order {speak_digits(number)} for {speak_amount(order.total, self.domain.currency)} hasn't shipped "
                "yet. Shall I cancel it? Please say yes or no."
            )
        state.goal = None
        return f"{self._status_sentence(order)} Is there anything else I can help with?"

    def _verify(self, state: CallState, text: str) -> str:
        order = self.shop.find_order(state.slots["order_number"])
        words = re.findall(r"[a-z']+", text.lower())
        surname = order.customer_name.split()[-1].lower()
        name = " ".join(words[words.index(surname) - 1 : words.index(surname) + 1]) if surname in words else None
        if self.shop.verify(order, postcode=parse_spelled(text)) or (
            name and (self.shop.verify(order, name=name) or self.shop.verify(order, name=surname))
        ):
            state.slots["verified"] = True
            return self._advance(state)
        state.failed_verifications += 1
        if state.failed_verifications >= MAX_FAILED_VERIFICATIONS:
            state.pending = None
            state.goal = None
            return self._transfer(state, "verification_failed", "Sorry, those details don't match the order. ")
        return "Sorry, those details don't match the order. Could you give me the postcode or the full name again?"

    def _confirm_cancel(self, state: CallState, answer: bool | None) -> str:
        number = state.slots["order_number"]
        if answer is None:
            return f"Shall I cancel order {speak_digits(number)}? Please say yes or no."
        state.pending = None
        state.goal = None
        if not answer:
            return "Okay, I've left the order as it is. Is there anything else I can help with?"
        try:
            order = self.shop.cancel_order(number)
        except OrderNotCancellable:
            return "I'm sorry, that order can no longer be cancelled. You can return it within thirty days."
        state.actions.append({"type": "cancel_order", "order_number": number})
        return (
            f"Done: order {speak_digits(order.number)} is cancelled, and your refund of "
            f"{speak_amount(order.total, self.domain.currency)} will reach you within five working days. "
            "Is there anything else I can help with?"
        )

    def _transfer(self, state: CallState, reason: str, prefix: str) -> str:
        state.pending = None
        state.ended = True
        state.actions.append({"type": "transfer", "target": self.domain.transfer_target, "reason": reason})
        return prefix + "I'll put you through to a colleague now. Please hold."

    def _status_sentence(self, order: Order) -> str:
        number = speak_digits(order.number)
        if order.status == "shipped":
            sentence = f"Order {number} was shipped on {speak_date(order.shipped)}"
            sentence += f" with {order.carrier}" if order.carrier else ""
            if order.expected_delivery:
                sentence += f", and it should arrive by {speak_date(order.expected_delivery)}"
            return sentence + "."
        if order.status == "delivered":
            return f"Order {number} has been delivered."
        if order.status == "processing":
            expected = f" It should arrive by {speak_date(order.expected_delivery)}." if order.expected_delivery else ""
            return f"Order {number} is being prepared and hasn't shipped yet.{expected}"
        return f"Order {number} was cancelled."

    # Speaking ------------------------------------------------------------------------------------------------

    def licence(self, state: CallState) -> FactLicence:
        """What may be stated on this call: the domain's texts and every turn so far (the agent's own turns were
        written from tools and the knowledge base, or passed this same guard)."""
        return FactLicence(self.domain.greeting, self.domain.opening_hours, *(t.text for t in state.turns))

    def _small_talk(
        self, state: CallState, cancel: threading.Event | None, first_token: Callable[[], None]
    ) -> Iterator[str]:
        """The language model's reply, clause by clause, each checked by the fact guard; without a model, or when
        a clause states an unlicensed fact, a safe sentence instead. ``first_token`` is called when the model's
        first piece of text arrives."""
        fallback = "I'm not sure I can help with that. " + MENU
        if self.lm is None:
            yield from split_sentences(fallback)
            return
        from voiceagent.components.lm.context import pack_prompt, stop_strings

        licence = self.licence(state)
        prompt = pack_prompt(
            self.lm.tokenizer,
            self.lm.prompt_style,
            system=f"{self.domain.persona} {SMALL_TALK_RULES}",
            facts=self._known_facts(state),
            turns=state.turns,
            window=self.lm.context_window,
            reply_budget=self.reply_tokens,
        )
        spoken = False
        with closing(self.lm.stream(prompt, self.reply_tokens, stop_strings(self.lm.prompt_style), cancel)) as pieces:
            for clause in _guarded_clauses(_noting_first(pieces, first_token), licence):
                spoken = True
                yield clause
        if not spoken:
            yield from split_sentences(fallback)

    def _known_facts(self, state: CallState) -> str:
        """A short summary of what is known, always kept in the prompt however long the call."""
        known = [f"{k.replace('_', ' ')}: {v}" for k, v in state.slots.items()]
        known += [f"done: {a['type'].replace('_', ' ')}" for a in state.actions]
        return "; ".join(known)
