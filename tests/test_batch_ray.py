"""`voiceagent batch --ray` against a real two-worker Ray cluster on 127.0.0.1, started here with `ray start`:
the same results and files as the one-machine batch, resuming, bad files, and workers or the driver killed."""

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from conftest import DETERMINISTIC

pytestmark = pytest.mark.slow

RAY = Path(sys.executable).with_name("ray")
WORKER_LINE = re.compile(r"^ray worker (\d+) on \S+: (\d+) calls in [\d.]+ s, models loaded (\d+)x", re.M)


def results(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def output_files(out: Path) -> dict[str, bytes]:
    """Every file under ``out`` but results.jsonl, by relative path."""
    files = sorted(p for p in out.rglob("*") if p.is_file() and p != out / "results.jsonl")
    return {str(p.relative_to(out)): p.read_bytes() for p in files}


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A Ray head with 2 CPUs on 127.0.0.1 (`ray start --block`, ended by SIGTERM to its pid), its token only in
    the environment of this test's processes: (address, environment for the drivers)."""
    if not RAY.exists():  # a test CI relies on: never skipped
        pytest.fail("ray is not installed: pip install 'voiceagent[ray]' (make install-test does)")
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         f"--temp-dir={temp}", "--include-dashboard=false", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    started = []
    try:
        deadline = time.monotonic() + 60
        while not any("raylet" in p.name() for p in psutil.Process(head.pid).children(recursive=True)):
            assert head.poll() is None, head.stderr.read()
            assert time.monotonic() < deadline, "ray start: no raylet after 60 s"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", env
    finally:
        started = psutil.Process(head.pid).children(recursive=True) if head.poll() is None else []
        head.send_signal(signal.SIGTERM)  # `ray start --block` drains, then ends every process it started
        head.wait(60)
        gone, alive = psutil.wait_procs(started, timeout=30)
        shutil.rmtree(temp, ignore_errors=True)
        assert not alive, f"Ray processes left after SIGTERM: {alive}"


def batch(env, *args, **popen) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "voiceagent", "--config", str(DETERMINISTIC), "batch", *map(str, args), "--quiet"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, **popen)


def workers(stderr: str) -> list[tuple[int, int, int]]:
    """(pid, calls, model loads) of each worker the driver reported."""
    return [tuple(map(int, m)) for m in WORKER_LINE.findall(stderr)]


@pytest.fixture(scope="module")
def one_machine(fixtures, tmp_path_factory, cluster):
    """`voiceagent batch audio_fixtures` without Ray, the language model replying: the reference outputs."""
    out = tmp_path_factory.mktemp("one-machine")
    run = batch(cluster[1], fixtures, "--out", out)
    assert run.returncode == 0, run.stderr
    return out


def test_ray_batch_is_the_one_machine_batch(cluster, one_machine, fixtures, tmp_path):
    """Same results (as sets of lines) and every output file byte for byte; two workers, models loaded once each."""
    address, env = cluster
    out = tmp_path / "ray"
    run = batch(env, fixtures, "--out", out, "--ray", address, "--ray-workers", "2")
    assert run.returncode == 0, run.stderr
    assert "9 calls done, 0 failed" in run.stderr
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 9 and set(lines) == set((one_machine / "results.jsonl").read_text().splitlines())
    expected = output_files(one_machine)
    assert len(expected) == 9 * 2 + sum(r["replies"] for r in results(one_machine))
    assert output_files(out) == expected
    reported = workers(run.stderr)
    assert len(reported) == 2 and len({pid for pid, _, _ in reported}) == 2
    assert sum(calls for _, calls, _ in reported) == 9
    assert all(loads == 1 and calls >= 1 for _, calls, loads in reported)  # per worker, not per call


@pytest.fixture(scope="module")
def mixed_calls(fixtures, tmp_path_factory) -> list[Path]:
    """Inputs for the transcription-only runs: a folder of every fixture and two bad files, and a missing file."""
    folder = tmp_path_factory.mktemp("calls")
    for path in fixtures.iterdir():
        shutil.copy(path, folder / path.name)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "corrupt.flac").write_bytes(b"fLaC" + os.urandom(2000))
    return [folder, folder.parent / "missing.wav"]


@pytest.fixture(scope="module")
def transcribed_alone(mixed_calls, tmp_path_factory, cluster) -> Path:
    """`voiceagent batch --no-reply` of the mixed calls without Ray: the reference."""
    out = tmp_path_factory.mktemp("alone")
    run = batch(cluster[1], *mixed_calls, "--out", out, "--no-reply")
    assert run.returncode == 1 and "9 calls done, 3 failed" in run.stderr, run.stderr
    return out


def test_ray_batch_resumes_and_records_bad_files(cluster, mixed_calls, transcribed_alone, tmp_path):
    """A partial results.jsonl: only the calls missing from it run. Bad files get their error lines, as without Ray."""
    address, env = cluster
    folder, missing = mixed_calls
    out = tmp_path / "ray"
    out.mkdir()
    reference = (transcribed_alone / "results.jsonl").read_text().splitlines()
    kept = [line for line in reference if '"jfk"' in line or '"empty"' in line]
    (out / "results.jsonl").write_text("\n".join(kept) + "\n")  # jfk and empty.wav: done before

    run = batch(env, *mixed_calls, "--out", out, "--no-reply", "--ray", address, "--ray-workers", "2")
    assert run.returncode == 1  # corrupt.flac and missing.wav
    assert "8 calls done, 2 failed" in run.stderr
    assert str(folder / "corrupt.flac") in run.stderr and f"{missing}: no such file" in run.stderr
    assert sum(calls for _, calls, _ in workers(run.stderr)) == 9  # missing.wav never left the driver
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 12 and set(lines) == set(reference)
    assert not (out / "jfk").exists()  # not run again
    assert output_files(out) == {k: v for k, v in output_files(transcribed_alone).items() if not k.startswith("jfk/")}

    again = batch(env, *mixed_calls, "--out", out, "--no-reply", "--ray", address)
    assert again.returncode == 0 and "0 calls done, 0 failed" in again.stderr and len(results(out)) == 12


def cluster_workers() -> list[psutil.Process]:
    """The Ray worker processes holding a CallWorker, on this machine."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any("CallWorker" in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


def wait_for_lines(out: Path, count: int, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not ((out / "results.jsonl").exists() and len(results(out)) >= count):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, f"fewer than {count} results after {timeout_s} s"
        time.sleep(0.05)


def driver(env, *args) -> subprocess.Popen:
    command = [sys.executable, "-m", "voiceagent", "--config", str(DETERMINISTIC), "batch", *map(str, args), "--quiet"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_ray_batch_survives_a_worker_killed(cluster, mixed_calls, transcribed_alone, tmp_path):
    """A worker killed mid-batch is restarted and its call retried: nothing lost, the same files."""
    address, env = cluster
    out = tmp_path / "ray"
    process = driver(env, *mixed_calls, "--out", out, "--no-reply", "--ray", address, "--ray-workers", "2")
    wait_for_lines(out, 1, process)
    victims = cluster_workers()
    assert len(victims) == 2
    victims[0].kill()  # SIGKILL: a crash, as far as Ray can tell
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr  # the bad files
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 12 and set(lines) == set((transcribed_alone / "results.jsonl").read_text().splitlines())
    assert output_files(out) == output_files(transcribed_alone)
    (survivor,) = [pid for pid, _, _ in workers(stderr) if pid == victims[1].pid]
    (restarted,) = [pid for pid, _, _ in workers(stderr) if pid != survivor]
    assert restarted != victims[0].pid  # Ray restarted the killed worker: a new process, its models loaded again
    assert all(loads == 1 for _, _, loads in workers(stderr))


def test_ray_batch_resumes_after_the_driver_is_killed(cluster, mixed_calls, tmp_path):
    """kill -9 of the driver mid-batch, then the same command: every call exactly once."""
    address, env = cluster
    args = (*mixed_calls, "--out", tmp_path / "out", "--no-reply", "--ray", address, "--ray-workers", "2")
    process = driver(env, *args)
    wait_for_lines(tmp_path / "out", 2, process)
    process.kill()
    process.wait()
    done_before = {r["call"] for r in results(tmp_path / "out")}
    assert 2 <= len(done_before) < 12
    rerun = batch(env, *args)
    assert rerun.returncode in (0, 1), rerun.stderr  # 1 when a bad file was still to do
    after = results(tmp_path / "out")
    assert len(after) == len({r["call"] for r in after}) == 12  # none lost, none done twice
    sent = {r["call"] for r in after} - done_before - {"missing"}  # missing.wav never leaves the driver
    assert sum(calls for _, calls, _ in workers(rerun.stderr)) == len(sent)
    assert all((tmp_path / "out" / r["call"] / "transcript.json").is_file() for r in after if r["status"] == "ok")
