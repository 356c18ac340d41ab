"""Scripted calls (tests/conversations/*.yaml) through the whole dialogue core: caller lines in, the call's
slots, actions and what the agent said checked against the expectations in each file."""

from pathlib import Path

import pytest
import yaml

from voiceagent.dialogue.agent import Agent
from voiceagent.dialogue.script import parse_line
from voiceagent.dialogue.state import CallState

ROOT = Path(__file__).resolve().parents[1]
CONVERSATIONS = sorted((ROOT / "tests" / "conversations").glob("*.yaml"))


def run_call(agent: Agent, lines: list[str]) -> CallState:
    state = CallState()
    agent.greet(state)
    for line in lines:
        turn = parse_line(line)
        agent.reply(state, turn.text, turn.dtmf)
    return state


def check(state: CallState, expect: dict) -> None:
    said = [t.text.lower() for t in state.turns[1:] if t.role == "agent"]
    for phrase in expect.get("said", []):
        assert any(phrase.lower() in s for s in said), f"never said {phrase!r}: {said}"
    for phrase in expect.get("not_said", []):
        assert not any(phrase.lower() in s for s in said), f"said {phrase!r}: {said}"
    for key, value in expect.get("slots", {}).items():
        assert state.slots.get(key) == value, f"slot {key}: {state.slots}"
    if "actions" in expect:
        assert len(state.actions) == len(expect["actions"]), state.actions
        for action, wanted in zip(state.actions, expect["actions"]):
            assert {k: action.get(k) for k in wanted} == wanted
    if "agent_turns" in expect:
        assert len(said) == expect["agent_turns"]


@pytest.mark.parametrize("path", CONVERSATIONS, ids=lambda p: p.stem)
def test_conversation_without_language_model(path, domain):
    script = yaml.safe_load(path.read_text())
    check(run_call(Agent(domain), script["caller"]), script["expect"])


def test_there_are_enough_conversations():
    assert len(CONVERSATIONS) >= 15


def test_call_state_serialises(domain):
    import json

    state = run_call(Agent(domain), ["Where is my order 4567?", "DTMF:12#"])
    data = json.loads(state.to_json())
    assert [t["role"] for t in data["turns"]] == ["agent", "caller", "agent", "caller", "agent"]
    assert data["turns"][3]["dtmf"] == "12#" and data["slots"]["order_number"] == "4567"
    assert "first_clause_ms" in data["turns"][2]["timings"]


def test_hundreds_of_turns_stay_bounded(domain):
    agent = Agent(domain)
    state = run_call(agent, ["What time do you open?", "How much does delivery cost?"] * 150)
    assert len(state.turns) == 601 and not state.ended
    assert state.unproductive_turns == 0


@pytest.fixture(scope="module")
def smollm2():
    """The bundled chat model on the fast runtime, as `voiceagent chat` runs it."""
    from voiceagent.components.lm import create_lm

    lm = create_lm("ctranslate2", model="smollm2-135m", device="cpu")
    lm.load()
    return lm


@pytest.mark.slow
@pytest.mark.parametrize("path", CONVERSATIONS, ids=lambda p: p.stem)
def test_conversation_with_the_language_model(path, domain, smollm2):
    """The same expectations hold with the real model answering small talk: facts never come from it."""
    script = yaml.safe_load(path.read_text())
    check(run_call(Agent(domain, smollm2), script["caller"]), script["expect"])


@pytest.mark.slow
def test_small_talk_is_spoken_and_guarded(domain, smollm2):
    state = run_call(Agent(domain, smollm2), ["Hello! How are you doing today?"])
    reply = state.turns[-1]
    assert reply.text and "I'm not sure I can help" not in reply.text
    assert Agent(domain).licence(state).unlicensed(reply.text) == set()
    assert reply.timings["first_clause_ms"] <= reply.timings["total_ms"]
