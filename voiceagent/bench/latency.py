"""Voice-to-voice latency of a live call: how long a caller waits, from the end of their speech to the agent's voice.

How it measures (``run_latency_bench``):

- The default models from the config, loaded and warmed up (one untimed call) before anything is timed.
- A scripted caller (``voiceagent.conversation.caller``) plays a multi-turn call (``configs/calls/latency_call.txt``
  unless ``--call``) into a session in real time, as an 8 kHz phone line in 20 ms frames; its lines are spoken
  by the configured voice and trimmed of silence, so a turn's speech ends at its last sample.
- ``p50_ms`` / ``p95_ms``: the caller's own measure of each reply, from the end of its speech to the first
  non-silent agent frame. ``stages``: the medians of the session's marks for the same replies (endpoint: the
  silence that ends the turn; transcript: wait for the final transcript after it; reply_start: queueing;
  first_clause: the dialogue core's first clause; first_audio_ready: TTS of the first sentence; first_audio:
  until the line plays it).
- ``baseline``: the same call in the same run through the naive sequential pipeline (same endpointing; no
  partial or early transcripts: the whole turn is transcribed after it ends; the whole reply written, then
  spoken). Streaming runs first, then the baseline.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
from pathlib import Path

import numpy as np

from voiceagent.bench import print_to_stderr
from voiceagent.conversation.caller import ScriptedCaller
from voiceagent.conversation.session import MARKS, Engine
from voiceagent.dialogue.script import read_script
from voiceagent.dialogue.shop import create_demo_database

DEFAULT_CALL = Path(__file__).resolve().parents[2] / "configs" / "calls" / "latency_call.txt"
LINE_RATE = 8000
#: The stages a reply's time is split into: each from the mark before it (the language model's first token, which
#: only small talk has, is reported on its own, from the end of speech).
STAGES = tuple(m for m in MARKS if m != "first_token")


def stage_times(latency: dict[str, float]) -> dict[str, float]:
    """One reply's marks (ms from the end of speech) as the time each stage took."""
    times, before = {}, 0.0
    for stage in STAGES:
        if (at := latency.get(f"{stage}_ms")) is not None:
            times[f"{stage}_ms"], before = round(at - before, 1), at
    if "first_token_ms" in latency:
        times["first_token_ms"] = latency["first_token_ms"]
    return times


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def play_call(engine: Engine, turns, voice, streaming: bool = True) -> dict:
    """One real-time call through ``engine`` (with a fresh copy of the demo shop, so every run finds the same
    orders): the caller's latencies and the session's stage medians."""
    with tempfile.TemporaryDirectory() as folder:
        agent = engine.agent.with_database(create_demo_database(Path(folder) / "shop.sqlite"))
        rules = dataclasses.replace(engine.rules, streaming=streaming)
        engine = Engine(engine.vad, engine.asr, agent, engine.tts, rules)
        caller = ScriptedCaller(LINE_RATE, realtime=True)
        session = engine.open_call(LINE_RATE, transport="bench", clock=caller.clock)
        reports = caller.run(session, turns, voice)
        session.wait(30)
    latencies = [r.voice_to_voice_ms for r in reports if r.voice_to_voice_ms is not None]
    replies = [stage_times(t.latency) for t in session.state.turns if t.role == "agent" and t.latency]
    keys = [f"{stage}_ms" for stage in STAGES] + ["first_token_ms"]
    stages = {
        k: round(statistics.median(r[k] for r in replies if k in r), 1) for k in keys if any(k in r for r in replies)
    }
    return {
        "turns": len(reports),
        "answered": len(latencies),
        "p50_ms": _percentile(latencies, 50),
        "p95_ms": _percentile(latencies, 95),
        "stages": stages,
        "voice_to_voice_ms": latencies,
        "transcripts": [t.text for t in session.state.turns if t.role == "caller"],
    }


def run_latency_bench(config: dict, call: Path = DEFAULT_CALL) -> dict:
    from voiceagent import config as config_module

    turns = read_script(call)
    voice = config_module.build_tts(config)
    engine = Engine.from_config(config)
    print_to_stderr("loading and warming up the models")
    engine.load()
    play_call(engine, turns[:1], voice)
    print_to_stderr(f"streaming pipeline: {len(turns)} caller turns in real time")
    result = play_call(engine, turns, voice)
    print_to_stderr("naive sequential pipeline, the same call")
    baseline = play_call(engine, turns, voice, streaming=False)
    result["call"] = str(call)
    result["baseline"] = {k: baseline[k] for k in ("p50_ms", "p95_ms", "stages", "answered", "voice_to_voice_ms")}
    return result


def format_table(result: dict) -> str:
    """The benchmark as the Markdown table in the README."""
    base = result["baseline"]

    def ratio(key: str) -> str:
        return f"{base[key] / result[key]:.2f}x" if result[key] and base[key] else "-"

    rows = [
        "| | streaming (ours) | naive sequential | baseline / ours |",
        "|---|---|---|---|",
        f"| voice-to-voice p50 | {result['p50_ms']:.0f} ms | {base['p50_ms']:.0f} ms | {ratio('p50_ms')} |",
        f"| voice-to-voice p95 | {result['p95_ms']:.0f} ms | {base['p95_ms']:.0f} ms | {ratio('p95_ms')} |",
    ]
    for key in [f"{stage}_ms" for stage in STAGES] + ["first_token_ms"]:
        ours, theirs = result["stages"].get(key), base["stages"].get(key)
        if ours is not None or theirs is not None:
            name = key[:-3].replace("_", " ") + (" (small talk, from end of speech)" if key == "first_token_ms" else "")
            rows.append(f"| {name}: median | {ours or 0:.0f} ms | {theirs or 0:.0f} ms | |")
    rows.append(f"\n{result['turns']} caller turns, {result['answered']} answered; call: {result['call']}")
    return "\n".join(rows)
