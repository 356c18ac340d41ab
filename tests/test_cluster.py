"""The Ray runner's logic without Ray: the worker's per-call work on stand-in stages, and the driver's bookkeeping.
The real cluster is tests/test_batch_ray.py."""

import json

import pytest

from voiceagent import cluster
from voiceagent.audio import Audio, write_wav
from voiceagent.batch import ResultsLog
from voiceagent.cluster import CallOutputs, CallWorker, call_bytes, collect
from voiceagent.errors import AudioError


class OneSegmentVad:
    def speech_segments(self, audio):
        return [(0.0, audio.duration_s)]

    def load(self):
        pass


class LengthAsr:
    """Says how long the audio is: a transcript that shows which file the worker read."""

    def transcribe(self, audio):
        return type("Transcript", (), {"text": f"{audio.duration_s:.2f} seconds"})()

    def load(self):
        pass


@pytest.fixture
def worker(monkeypatch):
    builds = []

    def build_stages(**stages):
        builds.append(stages)
        return OneSegmentVad(), LengthAsr(), None, None

    monkeypatch.setattr(cluster, "build_stages", build_stages)
    worker = CallWorker({"reply": False}, {})
    worker.builds = builds
    return worker


def test_worker_processes_a_calls_bytes_under_its_own_name(worker, tmp_path):
    write_wav(tmp_path / "a.wav", Audio.from_pcm16(b"\x00\x10" * 8000, 16000))
    first = worker.process("a", (tmp_path / "a.wav").read_bytes(), "recordings/a.wav")
    assert first.result == {"call": "a", "file": "recordings/a.wav", "status": "ok", "duration_s": 0.5, "turns": 1}
    assert sorted(first.files) == ["transcript.json", "transcript.srt"]
    transcript = json.loads(first.files["transcript.json"])
    assert transcript["file"] == "recordings/a.wav" and transcript["turns"][0]["text"] == "0.50 seconds"
    # A headerless phone recording is read by its suffix: 8000 mu-law bytes are 1 s.
    second = worker.process("b", b"\xff" * 8000, "/elsewhere/b.ulaw")
    assert second.result["duration_s"] == 1.0
    assert len(worker.builds) == 1 and second.worker["calls"] == 2  # stages built once for both calls
    bad = worker.process("c", b"not audio at all", "c.wav")
    assert bad.result["status"] == "error" and bad.result["file"] == "c.wav" and bad.files == {}


def test_call_bytes_says_why_a_path_cannot_be_sent(tmp_path):
    (tmp_path / "call.wav").write_bytes(b"RIFF")
    assert call_bytes(tmp_path / "call.wav") == b"RIFF"
    with pytest.raises(AudioError, match="no such file"):
        call_bytes(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="a folder"):
        call_bytes(tmp_path)


def test_collect_writes_each_calls_files_before_its_line(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    log = ResultsLog(out / "results.jsonl")

    def finished():
        yield "a", tmp_path / "a.wav", CallOutputs({"call": "a", "status": "ok"}, {"transcript.json": b"{}"})
        yield "b", tmp_path / "b.wav", CallOutputs({"call": "b", "status": "error", "error": "empty file"})
        assert (out / "a" / "transcript.json").read_bytes() == b"{}" and "b" in log.finished
        raise KeyboardInterrupt  # the driver stopped mid-batch

    with pytest.raises(KeyboardInterrupt):
        collect(finished(), out, log, total=3, progress=False)
    assert f"{tmp_path / 'b.wav'}: empty file" in capsys.readouterr().err
    assert not (out / "b").exists()  # an error without files leaves no folder
    assert ResultsLog(out / "results.jsonl").finished == {"a", "b"}  # what a rerun skips
