"""Batch throughput: recorded calls per minute and audio hours per hour, on one machine and on a Ray cluster.

How it measures (``run_batch_bench``):

- The input: the recorded calls given (default: ``audio_fixtures/``), each taken ``repeat`` times as distinct calls
  (links in a temporary folder), so that a run is long enough to time. Both sides get the same calls and the same
  config (``--config``), replies and language model included, exactly as ``voiceagent batch`` runs them.
- One machine: ``batch.build_stages`` and the loading of every model (``load_s``), then ``batch.run_batch`` into a
  fresh output folder (``processing_s``), in this process.
- Ray: ``cluster.run_batch_on_ray`` into another fresh folder, on the cluster at ``--ray`` (default: a local
  cluster started for the run, on this machine's CPUs) with ``--ray-workers`` workers. ``load_s``: connecting (or
  starting the local cluster) until every worker has its models loaded; ``processing_s``: the rest.
- ``calls_per_min`` and ``audio_h_per_h`` (hours of recorded audio processed per hour) are over ``processing_s``:
  model loading is paid once per process and is reported apart; ``wall_s`` is both. ``speedup``: Ray's
  processing throughput over one machine's. With ``runs`` > 1 each side runs that many times, alternating, and
  each figure is the median.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from voiceagent.batch import build_stages, find_calls, load_stages, run_batch
from voiceagent.bench import print_to_stderr
from voiceagent.errors import VoiceAgentError

DEFAULT_INPUTS = (Path(__file__).resolve().parents[2] / "audio_fixtures",)


def repeated_calls(inputs, repeat: int, folder: Path) -> Path:
    """A folder holding every call of ``inputs`` ``repeat`` times over (``copy<k>/<call>``, linked, not copied)."""
    calls = find_calls(inputs)
    if not calls:
        raise VoiceAgentError("bench batch: no audio files in the inputs")
    for k in range(1, repeat + 1):
        (folder / f"copy{k}").mkdir(parents=True)
        for call, path in calls:
            (folder / f"copy{k}" / f"{call}{path.suffix}").symlink_to(path.resolve())
    return folder


def throughput(results: list[dict], load_s: float, processing_s: float) -> dict:
    """One run's figures, from its result lines and timings."""
    failed = sum(r["status"] == "error" for r in results)
    audio_s = sum(r.get("duration_s", 0.0) for r in results)
    return {
        "calls": len(results),
        "failed": failed,
        "audio_s": round(audio_s, 1),
        "load_s": round(load_s, 2),
        "processing_s": round(processing_s, 2),
        "wall_s": round(load_s + processing_s, 2),
        "calls_per_min": round(len(results) / processing_s * 60, 2),
        "audio_h_per_h": round(audio_s / processing_s, 2),
    }


def one_machine_run(calls: Path, out: Path, stages: dict) -> dict:
    started = time.monotonic()
    vad, asr, agent, tts = build_stages(**stages)
    load_stages(vad, asr, tts)
    loaded = time.monotonic()
    results = run_batch([calls], out, vad, asr, agent, tts, progress=False)
    return throughput(results, loaded - started, time.monotonic() - loaded)


def ray_run(calls: Path, out: Path, stages: dict, address: str, workers: int | None) -> dict:
    from voiceagent.cluster import run_batch_on_ray

    run = run_batch_on_ray([calls], out, stages, address, workers, progress=False)
    return {**throughput(run.results, run.startup_s, run.processing_s), "workers": len(run.workers)}


#: The figures that differ from run to run; the others (calls, audio) are the same in every run.
TIMED = ("load_s", "processing_s", "wall_s", "calls_per_min", "audio_h_per_h")


def median_run(runs: list[dict]) -> dict:
    """Each timed figure's median over the runs."""
    return {k: round(statistics.median(r[k] for r in runs), 2) if k in TIMED else runs[0][k] for k in runs[0]}


def run_batch_bench(
    config: dict,
    inputs=DEFAULT_INPUTS,
    address: str | None = None,
    workers: int | None = 2,
    repeat: int = 3,
    runs: int = 1,
) -> dict:
    """One machine and Ray on the same calls, side by side (see the module's docstring)."""
    from voiceagent import config as config_module
    from voiceagent.cluster import LOCAL

    address = address or LOCAL
    stages = {"config": config, "domain": str(config_module.domain_path(config).resolve())}
    one, ray = [], []
    with tempfile.TemporaryDirectory(prefix="voiceagent-bench-batch-") as scratch:
        calls = repeated_calls(inputs, repeat, Path(scratch) / "calls")
        for number in range(1, runs + 1):
            print_to_stderr(f"run {number}/{runs}: one machine")
            one.append(one_machine_run(calls, Path(scratch) / f"one{number}", stages))
            print_to_stderr(f"run {number}/{runs}: Ray at {address}")
            ray.append(ray_run(calls, Path(scratch) / f"ray{number}", stages, address, workers))
    one_machine, cluster = median_run(one), median_run(ray)
    return {
        "calls": one_machine["calls"],
        "repeat": repeat,
        "runs": runs,
        "ray_address": address,
        "one_machine": one_machine,
        "ray": cluster,
        "speedup": round(cluster["calls_per_min"] / one_machine["calls_per_min"], 2),
    }


def format_table(result: dict) -> str:
    """The benchmark as the Markdown table in the README."""
    one, ray = result["one_machine"], result["ray"]
    rows = [
        f"| | one machine | Ray, {ray['workers']} workers | Ray / one machine |",
        "|---|---|---|---|",
    ]
    for key, name, unit in [
        ("calls_per_min", "calls per minute", ""),
        ("audio_h_per_h", "audio hours per hour", ""),
        ("processing_s", "processing", " s"),
        ("load_s", "model loading (Ray: cluster and workers)", " s"),
        ("wall_s", "wall time", " s"),
    ]:
        rows.append(f"| {name} | {one[key]:g}{unit} | {ray[key]:g}{unit} | {ray[key] / one[key]:.2f}x |")
    failed = f", {one['failed']} failed" if one["failed"] or ray["failed"] else ""
    rows.append(
        f"\n{result['calls']} calls ({one['audio_s'] / 60:.1f} min of audio{failed}: the inputs {result['repeat']}x), "
        f"median of {result['runs']} run(s); Ray at {result['ray_address']}."
    )
    return "\n".join(rows)
