"""The state of one call as the dialogue core keeps it: turns, slots, actions, timings. Plain data, JSON out."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class TurnRecord:
    """One turn of the call. ``timings`` are milliseconds from the start of the agent's work on it; ``latency``
    (live calls) the milliseconds from the end of the caller's speech to each stage of the reply."""

    role: str  # "caller" | "agent"
    text: str
    sentiment: float | None = None  # caller turns: -1 (angry) .. 1 (happy)
    dtmf: str | None = None
    intent: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    #: Agent turns cut short by the caller: ``text`` is what the caller heard, ``unheard`` the rest it had ready.
    interrupted: bool = False
    unheard: str = ""


@dataclass
class CallState:
    """Everything the dialogue core knows about the call so far."""

    turns: list[TurnRecord] = field(default_factory=list)
    #: What the caller has given: order_number, verified, and so on.
    slots: dict[str, object] = field(default_factory=dict)
    #: What the agent decided to do: {"type": "transfer" | "end_call" | "cancel_order", ...}.
    actions: list[dict] = field(default_factory=list)
    #: What the agent asked for and waits to hear ("order_number", "verification", "confirm_cancel", ...).
    pending: str | None = None
    #: What the caller wants done ("status", "cancel").
    goal: str | None = None
    #: Caller turns in a row that moved nothing forward.
    unproductive_turns: int = 0
    frustrated_turns: int = 0
    human_offered: bool = False
    failed_verifications: int = 0
    ended: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str)
