"""Concurrent phone calls: how many one ``voiceagent serve`` process answers on this machine, and how well.

How it measures (``run_calls_bench``):

- ``voiceagent serve`` runs in a process of its own, exactly as deployed: the config's default models (the
  language model included), SIP on a free port of 127.0.0.1, with a config file of its own written from the
  merged config (the user's ``--config`` over the defaults) with ``[serve] records`` set to a temporary folder
  and ``max_calls`` to the highest level. The bench waits for its "listening" line, and at the end stops it with
  SIGTERM by its pid and checks that it exits 0.
- The caller: SIPp (``voiceagent/bench/sipp_caller.xml``, filled in here) ramps up the calls of a level, one
  every ``START_EVERY_S`` (``--start-every``; 0 starts them all in the same second, so that every caller ends
  every turn at the same moment: the worst case), so that all n are in progress together for most of the level.
  Each call waits for the greeting, then says each turn of the script (``--call``, or ``DEFAULT_CALL``: an
  order-status call) and waits for the answer, and after the last turn waits for the agent
  to hang up. The turns are spoken by the configured voice, trimmed of silence and put through a phone line
  (8 kHz mu-law), streamed by SIPp as RTP. SIPp cannot hear, so its waits are fixed: each is the turn's speech,
  plus ``ANSWER_ALLOWANCE_S`` for the agent to start answering, plus the answer's length (the agent's replies
  worked out beforehand by running the script through the dialogue core as text, each spoken by the voice),
  plus ``GAP_S``. An answer that starts more than the allowance late is talked over by the next turn (a barge-in
  in the record: ``talked_over``).
- One untimed warm-up call (the greeting and the first turn) before the levels; the levels then run one after
  another on the same server, each starting once the previous one's calls have all ended.
- ``p50_ms`` / ``p95_ms`` (and ``max_ms``): the server's own voice-to-voice measure of every agent reply in the
  level's call records (end of the caller's speech to the first agent audio out; the greeting has none).
- ``rtp_late_or_lost`` = ``server_late_frames`` + ``rtp_gaps``. ``server_late_frames``: the rise over the level of
  the server's Prometheus counter ``voiceagent_late_frames_total{transport="sip"}`` (frames the pacer could not
  send on time, and the caller's packets its jitter buffers found late or lost). ``rtp_gaps``: what a caller would
  hear as gaps in the agent's RTP, received on a UDP socket of the bench and stamped by the kernel on arrival
  (``SO_TIMESTAMPNS``, so a busy bench does not invent gaps): per stream (SSRC), each missing sequence number
  (``rtp_lost``) and each packet that came more than ``LATE_S`` after the one before it (``rtp_late``).
- ``cpu_pct``: the serve process's CPU time over the level (from SIPp's start to the last call's end) as a
  percentage of the whole machine (all cores: 100 = every core busy); ``machine_cpu_pct``: the same for
  everything running (SIPp, the bench, anyone else's work). ``rss_mb``: the serve process's peak resident memory,
  sampled every 0.5 s.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import numpy as np
import psutil

from voiceagent.bench import print_to_stderr
from voiceagent.errors import ConfigError, VoiceAgentError
from voiceagent.telephony.rtp import RtpError, RtpPacket

DEFAULT_LEVELS = (1, 2, 4, 8, 12)
#: Seconds between the starts of a level's calls: calls arrive one after another, as in life.
START_EVERY_S = 1.0
#: The caller's turns unless ``--call``: an order-status call (order 1234 is Bob Smith's), ending in goodbye.
DEFAULT_CALL = (
    "Where is my order? The number is one two three four.",
    "Bob Smith.",
    "How long does delivery take?",
    "Thanks, bye!",
)
SCENARIO = Path(__file__).with_name("sipp_caller.xml")
#: How late an answer may start before the caller's next turn talks over it (the greeting's too).
ANSWER_ALLOWANCE_S = 3.0
#: Silence the caller leaves after an answer ends, before its next turn.
GAP_S = 0.5
#: A packet of the agent's voice arriving this long after the one before it is a gap the caller hears.
LATE_S = 0.06
#: The goal: this many calls at once with a p95 voice-to-voice latency at most this, and no gaps.
GOAL_CALLS, GOAL_P95_MS = 8, 1500.0
#: How long one key SIPp's play_dtmf presses takes, with the pause after it (about).
DTMF_KEY_S = 0.3
SIPP_LOG_LINES = 30
# Linux's SO_TIMESTAMPNS (asm-generic; Python's socket module does not name it): kernel arrival stamps.
SO_TIMESTAMPNS = 35


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


# The call: what the caller says, and how long the agent takes to answer -----------------------------------------


@dataclasses.dataclass
class CallPlan:
    """One scripted call: the caller's turns (raw mu-law files, or keys) and how long each wait lasts."""

    greeting_s: float
    turns: list  # CallerTurn
    #: Each turn's audio file (None for keys) and how long the caller speaks (or keys in and the agent waits for more).
    audio: list[tuple[Path | None, float]]
    #: How long each of the agent's answers lasts, as its voice speaks it.
    answers_s: list[float]

    def waits_ms(self) -> tuple[int, list[int]]:
        """SIPp's pauses: after the answer (greeting_ms), and after each turn starts."""
        greeting = round((ANSWER_ALLOWANCE_S + self.greeting_s + GAP_S) * 1000)
        turns = [
            round((speech + ANSWER_ALLOWANCE_S + answer + GAP_S) * 1000)
            for (_, speech), answer in zip(self.audio, self.answers_s)
        ]
        return greeting, turns

    def duration_s(self) -> float:
        greeting, turns = self.waits_ms()
        return (greeting + sum(turns)) / 1000


def plan_call(config: dict, turns: list, voice, folder: Path) -> CallPlan:
    """Run the caller's turns through the dialogue core as text (on a copy of the shop's database) to learn the
    agent's answers and how long each takes to say; write each spoken turn to ``folder`` as raw mu-law. Turns after
    the one the agent hangs up on are dropped (SIPp would hear a BYE in the middle of its script)."""
    from voiceagent import config as config_module
    from voiceagent.audio import phone_line
    from voiceagent.dialogue.shop import create_demo_database
    from voiceagent.dialogue.state import CallState
    from voiceagent.g711 import MULAW

    for turn in turns:
        if turn.interrupt_after_s is not None or (turn.dtmf is None and not turn.text.strip()):
            raise VoiceAgentError(
                "bench calls plays each turn after the agent's answer: INTERRUPT lines and silent turns are not "
                "supported"
            )
    agent = config_module.build_agent(config)
    database = folder / "shop.sqlite"
    if agent.domain.database.is_file():
        shutil.copyfile(agent.domain.database, database)
    else:
        create_demo_database(database)
    agent = agent.with_database(database)
    state = CallState()
    greeting_s = voice.speak(agent.greet(state)).duration_s
    answers_s, kept = [], []
    for turn in turns:
        answers_s.append(voice.speak(agent.reply(state, turn.text, turn.dtmf)).duration_s)
        kept.append(turn)
        if state.ended:
            break
    if len(kept) < len(turns):
        dropped = len(turns) - len(kept)
        print_to_stderr(f"the agent hangs up after turn {len(kept)}: the {dropped} turns after it are dropped")
    audio = []
    for number, turn in enumerate(kept, 1):
        if turn.dtmf is not None:  # SIPp's keys (about DTMF_KEY_S each), then the agent's wait for more
            wait = 0.0 if turn.dtmf.endswith("#") else config["conversation"]["dtmf_timeout_s"]
            audio.append((None, DTMF_KEY_S * len(turn.dtmf) + wait))
            continue
        line = phone_line(voice.speak(turn.text).trim())
        path = folder / f"turn{number}.ulaw"
        path.write_bytes(MULAW.encode(line.pcm16()))
        audio.append((path, line.duration_s))
    return CallPlan(greeting_s, kept, audio, answers_s)


def scenario_text(plan: CallPlan) -> str:
    """The SIPp scenario of the plan: the template with its waits and turns filled in."""
    greeting_ms, waits = plan.waits_ms()
    parts = []
    for number, ((path, _), wait) in enumerate(zip(plan.audio, waits), 1):
        turn = plan.turns[number - 1]
        say = f'play_dtmf="{turn.dtmf}"' if path is None else f'rtp_stream="[turn{number}]"'
        parts.append(f"  <nop><action><exec {say}/></action></nop>")
        if number < len(waits):  # the last turn's wait is the wait for the agent's BYE
            parts.append(f'  <pause milliseconds="{wait}"/>')
    return SCENARIO.read_text().format(greeting_ms=greeting_ms, turns="\n".join(parts), last_answer_ms=waits[-1])


# The server -----------------------------------------------------------------------------------------------------


def toml_text(table: dict, path: tuple[str, ...] = ()) -> str:
    """A config as TOML (strings, numbers, booleans, lists of them, tables), for the server's config file."""

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | str) or (isinstance(v, float) and math.isfinite(v)):
            return json.dumps(v)  # JSON's escapes and numbers are TOML's too
        if isinstance(v, list):
            return "[" + ", ".join(value(item) for item in v) + "]"
        raise ConfigError(f"{'.'.join(path)}: cannot write {v!r} to the server's config")

    def key(k: str) -> str:
        return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)

    header = f"[{'.'.join(key(k) for k in path)}]\n" if path else ""
    text = header + "".join(f"{key(k)} = {value(v)}\n" for k, v in table.items() if not isinstance(v, dict))
    for name, sub in table.items():
        if isinstance(sub, dict):
            text += "\n" + toml_text(sub, (*path, name))
    return text


def free_port(kind=socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_port_range(count: int) -> int:
    """The first of ``count`` UDP ports in a row that are free now (SIPp's RTP streams take ports from ``-mp`` up)."""
    for _ in range(50):
        base = random.randrange(20000, 60000 - count, 2)
        probes = []
        try:
            for port in range(base, base + count):
                probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise VoiceAgentError(f"no {count} free UDP ports in a row on 127.0.0.1 for SIPp's RTP")


class ServeProcess:
    """``voiceagent serve`` in a process of its own, on free ports of 127.0.0.1; stopped with SIGTERM by its pid."""

    def __init__(self, config: dict, folder: Path, max_calls: int, start_timeout_s: float = 300):
        self.records = folder / "records"
        serve = {**config["serve"], "records": str(self.records), "max_calls": max_calls}
        config_file = folder / "serve.toml"
        config_file.write_text(toml_text({**config, "serve": serve}))
        self.sip_port, self.http_port = free_port(), free_port(socket.SOCK_STREAM)
        command = [sys.executable, "-m", "voiceagent", "--config", str(config_file), "serve"]
        command += ["--sip", f"127.0.0.1:{self.sip_port}", "--http", f"127.0.0.1:{self.http_port}", "--audiosocket", ""]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.psutil = psutil.Process(self.process.pid)
        self.log: list[str] = []
        threading.Thread(target=self._read_log, daemon=True).start()
        deadline = time.monotonic() + start_timeout_s
        while not any("listening" in line for line in self.log):
            self.check_running()
            if time.monotonic() > deadline:
                self.stop()
                raise VoiceAgentError(f"voiceagent serve did not start listening in {start_timeout_s:.0f} s")
            time.sleep(0.2)

    def _read_log(self) -> None:
        for line in self.process.stderr:
            self.log.append(line)

    def log_tail(self, lines: int = 20) -> str:
        return "".join(self.log[-lines:])

    def check_running(self) -> None:
        if self.process.poll() is not None:
            time.sleep(0.2)  # the last lines of its log
            raise VoiceAgentError(f"voiceagent serve exited ({self.process.returncode}):\n{self.log_tail()}")

    def _get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=10) as response:
            return response.read().decode()

    def active_calls(self) -> int:
        return json.loads(self._get("/health"))["active_calls"]

    def late_frames(self) -> float:
        """The server's count of SIP frames late or lost so far (voiceagent_late_frames_total{transport="sip"})."""
        from prometheus_client.parser import text_string_to_metric_families

        return sum(
            sample.value
            for family in text_string_to_metric_families(self._get("/metrics"))
            for sample in family.samples
            if sample.name == "voiceagent_late_frames_total" and sample.labels.get("transport") == "sip"
        )

    def wait_idle(self, timeout_s: float) -> None:
        """Until no call is in progress."""
        deadline = time.monotonic() + timeout_s
        while self.active_calls():
            self.check_running()
            if time.monotonic() > deadline:
                raise VoiceAgentError(f"calls still in progress {timeout_s:.0f} s after SIPp ended")
            time.sleep(0.2)

    def stop(self) -> int:
        """SIGTERM, then its exit status (SIGKILL, by its pid, if it has not exited after 30 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


# The caller's ears: the agent's RTP, and the serve process's CPU and memory ---------------------------------------


class RtpCapture:
    """A UDP socket that keeps each RTP packet sent to it with its arrival time (the kernel's stamp)."""

    def __init__(self):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            pass  # not Linux: stamped when read instead
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.packets: list[tuple[RtpPacket, float]] = []  # (packet, arrival in seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancillary, _, _ = self.socket.recvmsg(2048, socket.CMSG_SPACE(16))
            except TimeoutError:
                continue
            arrival = time.time()
            for level, kind, stamp in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(stamp) >= 16:
                    seconds, nanoseconds = struct.unpack("qq", stamp[:16])
                    arrival = seconds + nanoseconds / 1e9
            try:
                self.packets.append((RtpPacket.parse(data), arrival))
            except RtpError:
                pass

    def stop(self) -> list[tuple[RtpPacket, float]]:
        self._stop.set()
        self._thread.join()
        self.socket.close()
        return self.packets


def rtp_gaps(packets: list[tuple[RtpPacket, float]], late_s: float = LATE_S) -> dict:
    """Gaps a caller would hear in each stream (SSRC) of ``packets`` ((packet, arrival s), in arrival order):
    sequence numbers never received (``lost``), packets more than ``late_s`` after the one before (``late``), the
    longest time between two packets (``max_gap_ms``) and the number of streams."""
    streams: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for packet, arrival in packets:
        streams[packet.ssrc].append((packet.sequence, arrival))
    lost = late = 0
    longest = 0.0
    for stream in streams.values():
        first, numbers = stream[0][0], set()
        for sequence, _ in stream:
            numbers.add((sequence - first + 0x8000) % 0x10000 - 0x8000)  # unwrapped, around the first
        lost += max(numbers) - min(numbers) + 1 - len(numbers)
        arrivals = np.array([arrival for _, arrival in stream])
        between = np.diff(arrivals)
        late += int(np.count_nonzero(between > late_s))
        longest = max(longest, float(between.max(initial=0.0)))
    return {"streams": len(streams), "lost": lost, "late": late, "max_gap_ms": round(longest * 1000, 1)}


class ResourceSampler:
    """The serve process's peak resident memory (every ``every_s``), and its CPU time and the machine's over the
    sampling, as % of the whole machine."""

    def __init__(self, process: psutil.Process, every_s: float = 0.5):
        self.process = process
        self.every_s = every_s
        self.peak_rss = 0
        self._stop = threading.Event()
        self.process.cpu_percent(None)
        psutil.cpu_percent(None)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
            except psutil.Error:
                return
            if self._stop.wait(self.every_s):
                return

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {
            "cpu_pct": round(self.process.cpu_percent(None) / psutil.cpu_count(), 1),
            "machine_cpu_pct": round(psutil.cpu_percent(None), 1),
            "rss_mb": round(self.peak_rss / 2**20, 1),
        }


# A level: n calls at once ----------------------------------------------------------------------------------------


def place_calls(
    serve: ServeProcess, plan: CallPlan, scenario: Path, calls: int, capture_port: int, start_every_s: float = 0.0
) -> dict:
    """SIPp places ``calls`` calls to the server, one every ``start_every_s`` (0: all at once), and waits for them
    all to end; its count of failed calls."""
    folder = scenario.parent
    rate = ["-r", "1", "-rp", str(round(start_every_s * 1000))] if start_every_s else ["-r", str(calls), "-rp", "1000"]
    command = ["sipp", "-sf", str(scenario), "-m", str(calls), "-l", str(calls), *rate]
    command += ["-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", str(free_port_range(4 * calls + 8))]
    command += ["-key", "capture_port", str(capture_port)]
    for number, (path, _) in enumerate(plan.audio, 1):
        if path is not None:
            command += ["-key", f"turn{number}", f"{path},1,0"]
    limit_s = plan.duration_s() + calls * start_every_s + 60
    command += ["-nostdin", "-timeout", f"{limit_s:.0f}s", "-timeout_error", "-trace_err", "-error_file"]
    command += [str(folder / "sipp_errors.log"), f"127.0.0.1:{serve.sip_port}"]
    try:
        run = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=limit_s + 30)
    except subprocess.TimeoutExpired:
        raise VoiceAgentError(f"SIPp did not finish {calls} calls in {limit_s + 30:.0f} s") from None
    failed = re.search(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", run.stdout)
    if run.returncode not in (0, 1) or failed is None:  # 1: some calls failed; anything else: SIPp itself did
        errors = folder / "sipp_errors.log"
        tail = "".join(errors.read_text(errors="replace").splitlines(True)[-SIPP_LOG_LINES:]) if errors.exists() else ""
        raise VoiceAgentError(
            f"SIPp exited {run.returncode}:\n{run.stdout[-1500:]}{run.stderr[-1500:]}{tail}\n"
            f"voiceagent serve's log:\n{serve.log_tail()}"
        )
    return {"failed": int(failed[1])}


def replies_of(records: list[Path]) -> tuple[list[dict], int, int]:
    """From call records: each agent reply's latency marks, the caller turns heard, the replies talked over."""
    replies, heard, talked_over = [], 0, 0
    for path in records:
        for turn in json.loads(path.read_text())["turns"]:
            if turn["role"] == "caller":
                heard += 1
            elif turn.get("latency", {}).get("voice_to_voice_ms") is not None:
                replies.append(turn["latency"])
                talked_over += bool(turn.get("interrupted"))
    return replies, heard, talked_over


def stage_medians(replies: list[dict]) -> dict[str, float]:
    """The median time of each stage of the replies (as ``bench latency`` splits them)."""
    from voiceagent.bench.latency import stage_times

    times = [stage_times(latency) for latency in replies]
    keys = dict.fromkeys(key for t in times for key in t)
    return {key: round(statistics.median(t[key] for t in times if key in t), 1) for key in keys}


def run_level(serve: ServeProcess, plan: CallPlan, scenario: Path, calls: int, start_every_s: float) -> dict:
    """``calls`` calls at once (started ``start_every_s`` apart), and what they measured."""
    before = set(serve.records.glob("*.json"))
    late_before = serve.late_frames()
    capture = RtpCapture()
    sampler = ResourceSampler(serve.psutil)
    started = time.monotonic()
    try:
        sipp = place_calls(serve, plan, scenario, calls, capture.port, start_every_s)
        serve.wait_idle(30)
    finally:
        resources = sampler.stop()
        time.sleep(0.1)  # the last packets
        packets = capture.stop()
    duration = time.monotonic() - started
    late_frames = round(serve.late_frames() - late_before)
    replies, heard, talked_over = replies_of(sorted(set(serve.records.glob("*.json")) - before))
    latencies = [latency["voice_to_voice_ms"] for latency in replies]
    gaps = rtp_gaps(packets)
    rtp = gaps["lost"] + gaps["late"]
    return {
        "p50_ms": _percentile(latencies, 50),
        "p95_ms": _percentile(latencies, 95),
        "max_ms": max(latencies, default=None),
        "rtp_late_or_lost": late_frames + rtp,
        "cpu_pct": resources["cpu_pct"],
        "rss_mb": resources["rss_mb"],
        "calls": calls,
        "failed": sipp["failed"],
        "answered_calls": gaps["streams"],
        "turns": calls * len(plan.turns),
        "heard": heard,
        "answered": len(latencies),
        "talked_over": talked_over,
        "server_late_frames": late_frames,
        "rtp_gaps": rtp,
        "rtp_lost": gaps["lost"],
        "rtp_late": gaps["late"],
        "rtp_max_gap_ms": gaps["max_gap_ms"],
        "machine_cpu_pct": resources["machine_cpu_pct"],
        "duration_s": round(duration, 1),
        "stages": stage_medians(replies),
        "voice_to_voice_ms": latencies,
    }


def run_calls_bench(
    config: dict, levels=DEFAULT_LEVELS, call: Path | None = None, start_every_s: float = START_EVERY_S
) -> dict:
    """Each level of concurrent calls in turn against one ``voiceagent serve``: {"<calls>": measures, ...}."""
    from voiceagent import config as config_module
    from voiceagent.dialogue.script import parse_line, read_script

    if shutil.which("sipp") is None:
        raise VoiceAgentError("sipp is not installed (Debian: sip-tester; scripts/system-deps.sh)")
    levels = sorted(set(levels))
    if not levels or levels[0] < 1:
        raise VoiceAgentError("levels must be numbers of calls, 1 or more")
    turns = read_script(call) if call else [parse_line(line) for line in DEFAULT_CALL]
    if not turns:
        raise VoiceAgentError(f"{call}: no caller turns")
    with tempfile.TemporaryDirectory(prefix="voiceagent-bench-calls-") as temp:
        folder = Path(temp)
        print_to_stderr("the caller's turns and the agent's answers, as text first")
        voice = config_module.build_tts(config)
        plan = plan_call(config, turns, voice, folder)
        scenario = folder / "caller.xml"
        scenario.write_text(scenario_text(plan))
        warm_up = dataclasses.replace(plan, turns=plan.turns[:1], audio=plan.audio[:1], answers_s=plan.answers_s[:1])
        (folder / "warm_up.xml").write_text(scenario_text(warm_up))
        print_to_stderr(f"a call: {len(plan.turns)} caller turns, about {plan.duration_s():.0f} s")
        print_to_stderr("starting voiceagent serve (loading the models)")
        serve = ServeProcess(config, folder, max_calls=max(levels))
        results = {}
        try:
            print_to_stderr("warm-up call (untimed)")
            place_calls(serve, warm_up, folder / "warm_up.xml", 1, free_port())
            serve.wait_idle(30)
            for calls in levels:
                print_to_stderr(f"{calls} concurrent calls")
                results[str(calls)] = level = run_level(serve, plan, scenario, calls, start_every_s)
                print_to_stderr(
                    f"  p50 {level['p50_ms']} ms, p95 {level['p95_ms']} ms, {level['rtp_late_or_lost']} late or "
                    f"lost, CPU {level['cpu_pct']}%, {level['rss_mb']} MB, {level['failed']} calls failed"
                )
        finally:
            status = serve.stop()
        if status != 0:
            raise VoiceAgentError(f"voiceagent serve exited {status} on SIGTERM:\n{serve.log_tail()}")
    return results


def goal_met(results: dict) -> bool | None:
    """Whether GOAL_CALLS calls at once met the goal (None when that level was not run)."""
    level = results.get(str(GOAL_CALLS))
    if level is None:
        return None
    return (
        level["p95_ms"] is not None
        and level["p95_ms"] <= GOAL_P95_MS
        and level["rtp_late_or_lost"] == 0
        and level["failed"] == 0
        and level["answered"] == level["turns"]
    )


def format_table(results: dict) -> str:
    """The benchmark as the Markdown table in the README."""
    rows = [
        "| concurrent calls | voice-to-voice p50 | p95 | replies | RTP late or lost (server + gaps heard) "
        "| CPU (% of machine) | peak RSS | failed calls |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def ms(value) -> str:
        return "-" if value is None else f"{value:.0f} ms"

    for calls, r in results.items():
        over = f" ({r['talked_over']} talked over)" if r["talked_over"] else ""
        rows.append(
            f"| {calls} | {ms(r['p50_ms'])} | {ms(r['p95_ms'])} | {r['answered']}/{r['turns']}{over} "
            f"| {r['rtp_late_or_lost']} ({r['server_late_frames']} + {r['rtp_gaps']}) | {r['cpu_pct']:.0f}% "
            f"| {r['rss_mb']:.0f} MB | {r['failed']} |"
        )
    met = goal_met(results)
    goal = f"{GOAL_CALLS} calls at once, p95 <= {GOAL_P95_MS / 1000:.1f} s, no audio gaps"
    verdict = "not run" if met is None else ("met" if met else "not met")
    rows.append(f"\nGoal ({goal}): {verdict}. CPU: the serve process, % of all {psutil.cpu_count()} cores.")
    return "\n".join(rows)
