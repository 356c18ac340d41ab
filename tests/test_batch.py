import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import DETERMINISTIC, words

from voiceagent.audio import Audio, read_audio, write_wav
from voiceagent.batch import ResultsLog, Turn, find_calls, srt


def results(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_find_calls_gives_unique_ids(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for p in ["a/call.wav", "b/call.wav", "top.flac", "notes.txt"]:
        (tmp_path / p).write_bytes(b"x")
    found = find_calls([tmp_path, tmp_path / "a" / "call.wav"])
    assert [c for c, _ in found] == ["a__call", "b__call", "top", "call"]
    assert len({c for c, _ in find_calls([tmp_path / "a" / "call.wav", tmp_path / "b" / "call.wav"])}) == 2


def test_srt():
    text = srt([Turn("caller", 0.5, 2.25, "Hello."), Turn("agent", 3661.0, 3662.001, "Hi.")])
    assert text == (
        "1\n00:00:00,500 --> 00:00:02,250\ncaller: Hello.\n\n2\n01:01:01,000 --> 01:01:02,001\nagent: Hi.\n\n"
    )


@pytest.fixture
def calls(tmp_path, fixtures):
    """A folder of recorded calls: good ones of several kinds, and bad ones."""
    folder = tmp_path / "calls"
    folder.mkdir()
    for name in ["call_mono_16k.wav", "call_phone_8k_mulaw.wav", "call_stereo_22k.wav", "five_five.wav"]:
        shutil.copy(fixtures / name, folder / name)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "corrupt.flac").write_bytes(b"fLaC" + os.urandom(2000))
    write_wav(folder / "silent_44k.wav", Audio(np.zeros(44100 * 5, np.float32), 44100))
    return folder


@pytest.mark.slow
def test_batch_writes_transcripts_and_reports_bad_files(cli, calls, tmp_path):
    out = tmp_path / "out"
    code, _, err = cli("batch", calls, tmp_path / "missing.wav", "--out", out, "--quiet", "--no-reply")
    assert code == 1
    by_call = {r["call"]: r for r in results(out)}
    assert len(by_call) == 8
    assert {c for c, r in by_call.items() if r["status"] == "error"} == {"empty", "corrupt", "missing"}
    assert "empty file" in by_call["empty"]["error"] and "no such file" in by_call["missing"]["error"]
    assert str(calls / "corrupt.flac") in err and "empty file" in err
    silent = {
        "call": "silent_44k",
        "file": str(calls / "silent_44k.wav"),
        "status": "ok",
        "duration_s": 5.0,
        "turns": 0,
    }
    assert by_call["silent_44k"] == silent

    mono = json.loads((out / "call_mono_16k" / "transcript.json").read_text())
    assert [t["speaker"] for t in mono["turns"]] == ["caller"] * 3
    assert "4567" in mono["turns"][1]["text"]
    assert all(t["start"] < t["end"] for t in mono["turns"])
    stereo = json.loads((out / "call_stereo_22k" / "transcript.json").read_text())
    speakers = [t["speaker"] for t in stereo["turns"]]
    assert speakers[0] == "caller" and "agent" in speakers
    assert "your order" in " ".join(words(stereo["turns"][speakers.index("agent")]["text"]))
    assert (out / "call_stereo_22k" / "transcript.srt").read_text().startswith("1\n00:00:00,")
    assert by_call["call_phone_8k_mulaw"]["turns"] == 3


@pytest.mark.slow
def test_batch_resumes_after_being_killed(calls, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "voiceagent", "batch", str(calls), "--out", str(out), "--quiet", "--no-reply"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (out / "results.jsonl").exists() and len(results(out)) >= 2:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = {r["call"] for r in results(out)}
    assert 2 <= len(done_before) < 7

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 1  # the bad files
    after = [r["call"] for r in results(out)]
    assert len(after) == len(set(after)) == 7  # each call once: none lost, none done twice
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "0 calls done, 0 failed" in again.stderr
    assert len(results(out)) == 7


@pytest.mark.slow
def test_batch_replies_to_each_caller_turn(cli, fixtures, tmp_path, fast_asr):
    """The agent answers a recorded call turn by turn, as it would have live; each reply is spoken to a WAV."""
    out = tmp_path / "out"
    code, _, _ = cli(
        "--config", DETERMINISTIC, "batch", fixtures / "call_phone_8k_mulaw.wav", "--out", out, "--quiet", "--no-lm"
    )
    assert code == 0
    (result,) = results(out)
    assert result["replies"] == 3
    replies = json.loads((out / "call_phone_8k_mulaw" / "transcript.json").read_text())["replies"]
    assert "order number" in replies[0]["reply"]
    assert "order four five six seven" in replies[1]["reply"]  # the number it heard, read back
    assert replies[2]["actions"] == [{"type": "end_call"}]
    heard = fast_asr.transcribe(read_audio(out / "call_phone_8k_mulaw" / replies[1]["audio"])).text
    assert {"order", "postcode"} <= set(words(heard))


def test_results_log_reads_what_a_crash_left(tmp_path):
    """The one reading of results.jsonl (the batch's resume, purges, the API): a line cut short or one that is no
    result is skipped; a rewrite keeps the lines as appended."""
    path = tmp_path / "results.jsonl"
    assert ResultsLog.read(path) == [] and ResultsLog(path).finished == set()
    ResultsLog(path).append({"call": "a", "status": "ok"})
    with open(path, "a") as f:
        f.write('[1, 2]\n\n{"call": ["b"]}\n{"call": "c", "sta')  # no result, blank, a bad call, cut short
    assert ResultsLog.read(path) == [{"call": "a", "status": "ok"}, {"call": ["b"]}]
    assert ResultsLog(path).finished == {"a"}
    ResultsLog.write(path, [{"call": "a", "status": "ok"}, {"call": "d", "status": "error"}])
    assert path.read_text() == '{"call": "a", "status": "ok"}\n{"call": "d", "status": "error"}\n'
