"""Recorded calls in bulk on a Ray cluster: ``voiceagent batch --ray [ADDRESS]``.

The same per-call work as the one-machine batch (``voiceagent.batch.process_call``), on a pool of Ray actors
(``CallWorker``): each builds and loads the stages once, from the config, then processes the calls it is sent one
after another. Workers need not share the driver's disk: the driver sends each call's file as bytes, the worker
writes its outputs into a temporary folder and sends them back as bytes, and the driver writes them under
``OUT/<call>/`` (atomically), then appends the call's line to ``results.jsonl``: the same files, byte for byte,
and the same resuming (a rerun skips every call that has a line) as without Ray.

A call that fails is its error line, as on one machine. A worker process that dies (a crash, killed, out of
memory) is restarted by Ray, which retries its call once; a call that kills its worker again gets an error line.
A worker that cannot be restarted leaves the pool; when none is left the batch stops, and a rerun goes on.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from voiceagent.audio import read_audio
from voiceagent.batch import ResultsLog, build_stages, error_result, find_calls, load_stages, process_call
from voiceagent.errors import VoiceAgentError, require
from voiceagent.files import write_atomically

#: ``--ray`` without an address: a Ray instance of this process's own, on this machine.
LOCAL = "local"
#: Times Ray restarts a worker process that died, and retries the call it was on.
MAX_RESTARTS = 3
MAX_CALL_RETRIES = 1
#: How many times this process has built the stages (a worker process should say 1, however many calls it did).
_stage_builds = 0


@dataclass
class CallOutputs:
    """What processing one call gave: its result line and its files (name: contents) for ``OUT/<call>/``."""

    result: dict
    files: dict[str, bytes] = field(default_factory=dict)
    worker: dict | None = None  # the worker's report (``CallWorker.report``); None when no worker saw the call


class CallWorker:
    """A Ray worker (actor): the batch's stages, built and loaded once, and the calls sent to it, one at a time."""

    def __init__(self, stages: dict, call_options: dict):
        # The models load in load(), not here: an error in a method reaches the driver as itself, one raised in
        # an actor's constructor only as a traceback in the news of its death.
        self.stages = stages
        self.call_options = call_options
        self.loaded = None  # (vad, asr, agent, tts)
        self.load_s = 0.0
        self.calls = 0
        self.busy_s = 0.0

    def load(self) -> dict:
        """Build and load the stages, unless done already (a worker Ray restarted loads them again); the report."""
        global _stage_builds
        if self.loaded is None:
            started = time.monotonic()
            vad, asr, agent, tts = build_stages(**self.stages)
            load_stages(vad, asr, tts)
            self.loaded = vad, asr, agent, tts
            _stage_builds += 1
            self.load_s = time.monotonic() - started
        return self.report()

    def report(self) -> dict:
        """Who this worker is and what it has done: pid, host, stage builds, load and processing seconds, calls."""
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "stage_builds": _stage_builds,
            "load_s": round(self.load_s, 3),
            "calls": self.calls,
            "busy_s": round(self.busy_s, 3),
        }

    def process(self, call: str, data: bytes, source: str) -> CallOutputs:
        """Process one call from its file's contents (``source``: the file as the driver names it)."""
        self.load()
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="voiceagent-call-") as scratch:
            path = Path(scratch) / f"input{Path(source).suffix}"  # the suffix says how to read it (.ulaw, .alaw)
            path.write_bytes(data)
            out = Path(scratch) / "out"
            result = process_call(call, path, out, *self.loaded, source=source, **self.call_options)
            folder = out / call
            files = {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else {}
        self.calls += 1
        self.busy_s += time.monotonic() - started
        return CallOutputs(result, files, self.report())


def call_bytes(path: Path) -> bytes:
    """A call's file, to send to a worker; a path that is no file raises the error the one-machine batch gives."""
    if not path.is_file():
        read_audio(path)  # raises: no such file, a folder
    return path.read_bytes()


class WorkerPool:
    """``count`` ``CallWorker`` actors on the cluster ``ray`` is connected to, each given one call at a time."""

    def __init__(self, ray, count: int, stages: dict, call_options: dict):
        self.ray = ray
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if count < 1 or count > cpus:
            raise VoiceAgentError(f"--ray-workers {count}: the Ray cluster has {cpus} CPUs, one for each worker")
        actor = ray.remote(num_cpus=1, max_restarts=MAX_RESTARTS, max_task_retries=MAX_CALL_RETRIES)(CallWorker)
        self.actors = [actor.remote(stages, call_options) for _ in range(count)]
        try:  # a model that will not load stops the batch here, before any call is marked done
            reports = ray.get([a.load.remote() for a in self.actors])
        except ray.exceptions.RayTaskError as exc:
            raise VoiceAgentError(f"a Ray worker could not load the models: {exc.cause}") from None
        except ray.exceptions.RayError as exc:
            raise VoiceAgentError(f"the Ray workers did not start: {exc}") from None
        self.reports = dict(zip(self.actors, reports))

    def run(self, pending: Iterable[tuple[str, Path]]) -> Iterator[tuple[str, Path, CallOutputs]]:
        """Each call's outputs as it finishes (in no fixed order), the calls sent out as workers come free."""
        queue, idle, in_flight = deque(pending), list(self.actors), {}
        while queue or in_flight:
            while queue and idle:
                call, path = queue.popleft()
                try:
                    data = call_bytes(path)
                except Exception as exc:  # unreadable here: its error line, as on one machine
                    yield call, path, CallOutputs(error_result(call, path, exc))
                    continue
                actor = idle.pop()
                in_flight[actor.process.remote(call, data, str(path))] = (call, path, actor)
            if not in_flight:
                continue
            [ref], _ = self.ray.wait(list(in_flight), num_returns=1)
            call, path, actor = in_flight.pop(ref)
            try:
                outputs = self.ray.get(ref)
            except self.ray.exceptions.RayActorError as exc:  # it died on this call, and again on the retry
                died = VoiceAgentError(f"the Ray worker died on it twice: {str(exc).splitlines()[0]}")
                yield call, path, CallOutputs(error_result(call, path, died))
                if not self._alive(actor):
                    self.actors.remove(actor)
                    if not self.actors and queue:
                        raise VoiceAgentError("every Ray worker died; run the same command again to go on") from exc
                    continue
            except self.ray.exceptions.RayTaskError as exc:  # outside process_call: writing or reading its files
                yield call, path, CallOutputs(error_result(call, path, exc.cause or exc))
            else:
                self.reports[actor] = outputs.worker
                yield call, path, outputs
            idle.append(actor)

    def _alive(self, actor) -> bool:
        """Whether a worker that died is back (restarted by Ray, its models loaded again)."""
        try:
            self.reports[actor] = self.ray.get(actor.load.remote())
            return True
        except self.ray.exceptions.RayError:
            return False


def collect(
    outputs: Iterable[tuple[str, Path, CallOutputs]], out: Path, log: ResultsLog, total: int, progress: bool = True
) -> list[dict]:
    """Write each call's files under ``out/<call>/``, then append its line to ``log``: a call is marked done only
    once its files are on disk. The results, in the order the calls finished."""
    from tqdm import tqdm

    results = []
    bar = tqdm(outputs, total=total, desc="calls", unit="call", disable=not progress, file=sys.stderr)
    for call, path, done in bar:
        if done.files:
            (out / call).mkdir(parents=True, exist_ok=True)
            for name, data in done.files.items():
                write_atomically(out / call / name, data)
        log.append(done.result)
        results.append(done.result)
        if done.result["status"] == "error":
            tqdm.write(f"{path}: {done.result['error']}", file=sys.stderr)
    return results


def connect(address: str):
    """Ray, connected to the cluster at ``address`` (``LOCAL``: a new one on this machine, for this run)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports phoned home
    ray = require("ray", "ray")
    options = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address == LOCAL:
        options.update(include_dashboard=False, _node_ip_address="127.0.0.1")
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise VoiceAgentError(f"cannot reach the Ray cluster at {address}: {exc}") from None
    return ray


@dataclass
class RayRun:
    """What ``run_batch_on_ray`` did: the results of this run and each worker's report; the seconds until every
    worker had its models loaded (connecting, or starting a local cluster, included), and the seconds after."""

    results: list[dict]
    workers: list[dict]
    startup_s: float = 0.0
    processing_s: float = 0.0


def run_batch_on_ray(
    inputs: Iterable[str | Path],
    out: Path,
    stages: dict,
    address: str = LOCAL,
    workers: int | None = None,
    progress: bool = True,
    **call_options,
) -> RayRun:
    """Process every call not yet in ``out/results.jsonl`` on Ray workers, each built with
    ``batch.build_stages(**stages)``; ``workers``: how many (default: one per CPU of the cluster).
    ``call_options`` go to ``process_call``."""
    out.mkdir(parents=True, exist_ok=True)
    log = ResultsLog(out / "results.jsonl")
    pending = [(call, path) for call, path in find_calls(inputs) if call not in log.finished]
    if not pending:
        return RayRun([], [])
    started = time.monotonic()
    ray = connect(address)
    try:
        count = workers or int(ray.cluster_resources().get("CPU", 1))
        pool = WorkerPool(ray, count, stages, call_options)
        ready = time.monotonic()
        results = collect(pool.run(pending), out, log, len(pending), progress)
        return RayRun(results, list(pool.reports.values()), ready - started, time.monotonic() - ready)
    finally:
        ray.shutdown()
