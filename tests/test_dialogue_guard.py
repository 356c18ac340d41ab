"""The fact guard, alone and inside the agent with a scripted language model."""

import shutil
import threading
from pathlib import Path

import pytest

from voiceagent.dialogue.agent import Agent
from voiceagent.dialogue.domain import load_domain
from voiceagent.dialogue.guard import FactLicence, facts_in
from voiceagent.dialogue.state import CallState

ROOT = Path(__file__).resolve().parents[1]


def test_facts_in_a_sentence():
    assert facts_in("Your order 4,567 was shipped on Tuesday for £24.50.") == {
        "4567",
        "shipped",
        "tuesday",
        "£",
        "2450",
    }
    assert facts_in("Just a second, the blue one is lovely.") == set()


def test_licence_grows_with_what_was_said():
    licence = FactLicence("Order four five six seven was shipped on Tuesday.")
    assert licence.unlicensed("It was shipped on Tuesday.") == set()
    assert licence.unlicensed("It was delivered on Friday.") == {"delivered", "friday"}


class ScriptedLM:
    """A language model that says what it is told to, piece by piece, and counts the pieces it produced."""

    context_window = 1024
    prompt_style = "dialogpt"

    def __init__(self, text: str):
        from transformers import GPT2TokenizerFast

        from voiceagent.models import gpt2_tokenizer_dir

        self.tokenizer = GPT2TokenizerFast.from_pretrained(gpt2_tokenizer_dir())
        self.pieces = [w + " " for w in text.split()]
        self.produced = 0

    def stream(self, prompt_ids, max_new_tokens=None, stop=(), cancel=None):
        for piece in self.pieces:
            if cancel is not None and cancel.is_set():
                return
            self.produced += 1
            yield piece


@pytest.fixture
def domain(tmp_path):
    shutil.copy(ROOT / "configs" / "domains" / "shop.toml", tmp_path / "shop.toml")
    return load_domain(tmp_path / "shop.toml")


def test_an_invented_order_status_is_never_spoken(domain):
    lm = ScriptedLM("Lovely to hear from you, really. Your order 7777 was delivered yesterday, so all good.")
    agent = Agent(domain, lm)
    state = CallState()
    agent.greet(state)
    reply = agent.reply(state, "Hello, how is your day going?")
    assert reply.startswith("Lovely to hear from you")
    assert "7777" not in reply and "delivered" not in reply
    assert lm.produced < len(lm.pieces)  # generation stopped at the clause that failed


def test_a_reply_with_only_invented_facts_falls_back(domain):
    agent = Agent(domain, ScriptedLM("It costs twenty pounds and ships on Monday."))
    state = CallState()
    reply = agent.reply(state, "Tell me something nice about your company please")
    assert "twenty" not in reply and "I'm not sure I can help" in reply


def test_barge_in_cancels_the_reply_mid_way(domain):
    lm = ScriptedLM("Well, hello there, lovely caller. It is a pleasure, truly, to chat with you today.")
    agent = Agent(domain, lm)
    state = CallState()
    cancel = threading.Event()
    clauses = agent.respond(state, "Hi there, how are you doing?", cancel=cancel)
    first = next(clauses)
    cancel.set()
    assert list(clauses) == []
    assert state.turns[-1].text == first and lm.produced < len(lm.pieces)


def test_small_talk_is_short_and_has_no_markdown(domain):
    lm = ScriptedLM("**Hello** there, _friend_! Nice to chat. I hope you are well. What a day. Lovely, truly, lovely.")
    reply = Agent(domain, lm).reply(CallState(), "Hi, how are you doing?")
    assert reply == "Hello there, friend! Nice to chat. I hope you are well. What a day."
