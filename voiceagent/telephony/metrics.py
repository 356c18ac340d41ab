"""Prometheus metrics of a telephony server: calls, turns, latency, errors. Labels never carry call data (no
numbers, no names): only the transport and the kind of error."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.3, 0.5, 0.7, 0.9, 1.1, 1.5, 2.0, 3.0, 5.0)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.active_calls = Gauge("voiceagent_active_calls", "Calls in progress", ["transport"], registry=self.registry)
        self.calls = Counter("voiceagent_calls", "Calls answered", ["transport"], registry=self.registry)
        self.turns = Counter("voiceagent_turns", "Agent replies to caller turns", ["transport"], registry=self.registry)
        self.latency = Histogram(
            "voiceagent_voice_to_voice_seconds",
            "End of the caller's speech to the agent's first audio",
            ["transport"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "voiceagent_errors", "Bad input dropped or refused, by kind", ["kind"], registry=self.registry
        )
        self.late_frames = Counter(
            "voiceagent_late_frames", "Frames to or from callers late or lost", ["transport"], registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def call_started(self, transport: str) -> None:
        self.calls.labels(transport).inc()
        self.active_calls.labels(transport).inc()

    def call_ended(self, transport: str) -> None:
        self.active_calls.labels(transport).dec()

    def reply(self, transport: str, latency: dict) -> None:
        """A reply's latency marks (the session's ``latency`` event)."""
        self.turns.labels(transport).inc()
        self.latency.labels(transport).observe(latency["voice_to_voice_ms"] / 1000)
