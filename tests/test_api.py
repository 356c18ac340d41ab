"""The HTTP API under /api/ (voiceagent/web/api.py) on a real aiohttp server on 127.0.0.1.

The fast tests serve fake stages (a VAD that hears one turn per channel, an ASR that writes the turn's length, an
agent that echoes, a silent voice) so that auth, limits, bad uploads, path traversal and the life of a job are
tested in milliseconds; the slow ones serve the real models: a job of the audio fixtures gives what `voiceagent
batch` writes for the same files, and a live call shows up in the calls while it is in progress.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import hypothesis
import numpy as np
import pytest
import schemathesis
from conftest import DETERMINISTIC, ROOT
from servers import Served
from test_serve import LINE, TwilioPeer, media_url

from voiceagent.audio import Audio, write_wav
from voiceagent.conversation.session import Engine
from voiceagent.telephony.server import TelephonyServer
from voiceagent.web import api, openapi

TOKEN = "s3cret-token"


class FakeVad:
    def load(self) -> None:
        pass

    def speech_segments(self, audio: Audio) -> list[tuple[float, float]]:
        return [(0.0, audio.duration_s)]


class FakeAsr:
    """Writes the length of what it hears. ``hold()`` makes each transcription wait for a ``release()``; ``die()``
    ends the thread of the one waiting as a process that died would (nothing written)."""

    def __init__(self):
        self.heard: list[float] = []
        self._allowed: threading.Semaphore | None = None
        self._dead = False

    def load(self) -> None:
        pass

    def hold(self) -> None:
        self._allowed = threading.Semaphore(0)

    def release(self, count: int = 1) -> None:
        self._allowed.release(count)

    def die(self) -> None:
        self._dead = True
        self._allowed.release(100)

    def transcribe(self, audio: Audio):
        if self._allowed is not None:
            self._allowed.acquire()
            if self._dead:
                threading.Event().wait()  # the thread stops here for good, like the process it stands for
        self.heard.append(round(audio.duration_s, 2))
        return SimpleNamespace(text=f"{audio.duration_s:.2f} seconds")


class FakeAgent:
    def greet(self, state) -> str:
        return "Hello."

    def reply(self, state, text: str) -> str:
        return f"You said {text}."


class FakeTts:
    def load(self) -> None:
        pass

    def speak(self, text: str) -> Audio:
        return Audio(np.zeros(1600, np.float32), 16000)


class FakeSession:
    """A call as /api/calls and the server see one: its record as last saved (redacted, as the session keeps it),
    and whether everything about it is written (``finished``)."""

    def __init__(self, record: dict, redactor):
        self.call_id = record["call_id"]
        self.transport = record["transport"]
        self.state = SimpleNamespace(turns=[])
        self.end_reason = ""
        self.finished = threading.Event()
        self._snapshot = redactor.data(record)

    def snapshot(self) -> dict:
        return self._snapshot

    def close(self, reason: str) -> None:
        self.end_reason = reason


class Client:
    """Requests to one served API: (status, headers, body), the body parsed when it is JSON."""

    def __init__(self, served: Served, token: str | None = None):
        host, port = served.address("http")
        self.base = f"http://{host}:{port}"
        self.token = token

    def __call__(self, method: str, path: str, headers: dict | None = None, **options):
        headers = dict(headers or {})
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")

        async def request():
            async with (
                aiohttp.ClientSession() as http,
                http.request(method, self.base + path, headers=headers, **options) as response,
            ):
                body = await response.read()
                if response.content_type == "application/json":
                    body = json.loads(body)
                return response.status, response.headers, body

        return asyncio.run(request())

    def upload(self, *files: Path | tuple[str, bytes], reply: str | None = None, chunked: bool = False):
        """POST /api/jobs with ``files`` as ``file`` parts (paths, or (file name, content) pairs); ``chunked``
        sends it without a Content-Length."""
        form = aiohttp.FormData(quote_fields=False)  # file names as browsers send them
        for item in files:
            name, content = (item.name, item.read_bytes()) if isinstance(item, Path) else item
            form.add_field("file", content, filename=name, content_type="application/octet-stream")
        if reply is not None:
            form.add_field("reply", reply)
        if not chunked:
            return self("POST", "/api/jobs", data=form)
        body = form()

        async def chunks():
            writer = _Collect()
            await body.write(writer)
            for start in range(0, len(writer.data), 1 << 16):
                yield bytes(writer.data[start : start + (1 << 16)])

        return self("POST", "/api/jobs", data=chunks(), headers={"Content-Type": body.content_type})

    def wait(self, job_id: str, timeout_s: float = 20) -> dict:
        """The job once it is done or failed."""
        deadline = time.monotonic() + timeout_s
        while True:
            status, _, job = self("GET", f"/api/jobs/{job_id}")
            assert status == 200, job
            if job["status"] in ("done", "failed"):
                return job
            assert time.monotonic() < deadline, f"job still {job['status']} after {timeout_s} s: {job}"
            time.sleep(0.05)


class _Collect:
    def __init__(self):
        self.data = bytearray()

    async def write(self, chunk: bytes) -> None:
        self.data += chunk


def tone(path: Path, seconds: float, rate: int = 16000, channels: int = 1) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    write_wav(path, Audio(np.stack([samples] * channels, axis=1) if channels > 1 else samples, rate))
    return path


@pytest.fixture
def calls(tmp_path) -> list[Path]:
    """Three short recorded calls: 0.5 s mono, 1 s mono, 0.75 s stereo."""
    folder = tmp_path / "calls"
    folder.mkdir()
    return [
        tone(folder / "first.wav", 0.5),
        tone(folder / "second.wav", 1.0, rate=8000),
        tone(folder / "third.wav", 0.75, channels=2),
    ]


@pytest.fixture
def serve_api(tmp_path):
    """Start a server with fake stages and ``[api]`` options (jobs in tmp_path / "jobs"); (served, asr, client)."""
    running: list[Served] = []

    def start(asr: FakeAsr | None = None, **options):
        asr = asr or FakeAsr()
        engine = Engine(FakeVad(), asr, FakeAgent(), FakeTts(), records=tmp_path / "records")
        api_options = {"jobs": str(tmp_path / "jobs"), **options}
        running.append(Served(TelephonyServer(engine, api_options=api_options)))
        return running[-1], asr, Client(running[-1], options.get("token"))

    yield start
    for served in running:
        served.stop()


def job_folders(tmp_path) -> list[str]:
    jobs = tmp_path / "jobs"
    return sorted(p.name for p in jobs.iterdir()) if jobs.exists() else []


# Auth ---------------------------------------------------------------------------------------------------------


def test_a_token_guards_every_api_path_and_nothing_else(serve_api):
    served, _, client = serve_api(token=TOKEN)
    anonymous = Client(served)
    for path in ("/api/jobs", "/api/calls", "/api/openapi.json", "/api/softphone", "/api/no-such-thing"):
        status, headers, body = anonymous("GET", path)
        assert status == 401, path
        assert headers["WWW-Authenticate"] == "Bearer"
        assert "token" in body["error"]
    assert Client(served, "wrong-token")("GET", "/api/jobs")[0] == 401
    assert anonymous("GET", "/api/jobs", headers={"Authorization": f"Basic {TOKEN}"})[0] == 401
    assert anonymous("DELETE", f"/api/jobs/{'0' * 32}")[0] == 401
    assert client("GET", "/api/jobs")[:3:2] == (200, [])
    assert anonymous("GET", f"/api/jobs?token={TOKEN}")[0] == 200  # a browser's WebSocket or <audio src>
    assert client("GET", "/api/no-such-thing")[0] == 404
    # Open whatever the token: the probes and the metrics.
    assert anonymous("GET", "/health")[0] == 200
    assert anonymous("GET", "/metrics")[0] == 200


def test_without_a_token_the_api_is_open(serve_api):
    _, _, client = serve_api()
    assert client("GET", "/api/jobs")[0] == 200


def test_other_sites_pages_and_other_hosts_are_refused(serve_api, calls):
    served, _, client = serve_api()
    host, port = served.address("http")
    evil = {"Origin": "http://evil.example"}
    for method, path in (("GET", "/api/calls"), ("DELETE", f"/api/jobs/{'0' * 32}"), ("GET", "/api/softphone")):
        status, _, body = client(method, path, headers=evil)
        assert status == 403 and "another site" in body["error"], (method, path)
    form = aiohttp.FormData()
    form.add_field("file", calls[0].read_bytes(), filename="first.wav")
    assert client("POST", "/api/jobs", data=form, headers=evil)[0] == 403
    assert client("POST", "/api/jobs", data=form, headers={"Origin": "null"})[0] == 403

    async def websocket(headers: dict) -> int:
        async with aiohttp.ClientSession() as http:
            try:
                async with http.ws_connect(f"ws://{host}:{port}/api/softphone", headers=headers):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert asyncio.run(websocket(evil)) == 403
    assert asyncio.run(websocket({"Origin": f"http://{host}:{port}"})) == 101  # the softphone's own page
    assert client("GET", "/api/jobs", headers={"Origin": f"http://{host}:{port}"})[0] == 200
    assert job_folders_count(served) == 0

    # DNS rebinding: a name of the attacker's that resolves to 127.0.0.1 brings its own Host.
    status, _, body = client("GET", "/api/calls", headers={"Host": f"evil.example:{port}"})
    assert status == 403 and "set [api] token" in body["error"]
    for loopback in (f"localhost:{port}", "127.0.0.1", f"[::1]:{port}"):
        assert client("GET", "/api/jobs", headers={"Host": loopback})[0] == 200, loopback
    assert served.get("/health")[0] == 200  # outside /api/: as it was
    served, _, client = serve_api(token=TOKEN)
    assert client("GET", "/api/jobs", headers={"Host": "voiceagent.example.com"})[0] == 200


def job_folders_count(served) -> int:
    root = Path(served.server.api_options["jobs"])
    return len(list(root.iterdir())) if root.exists() else 0


def test_errors_are_json(serve_api):
    _, _, client = serve_api()
    status, headers, body = client("PUT", "/api/jobs")
    assert status == 405 and "GET" in headers["Allow"] and "POST" in body["error"]
    status, _, body = client("GET", "/api/nothing/here")
    assert status == 404 and body["error"].startswith("Not Found")
    status, _, body = client("GET", "/api/jobs/not-a-job")
    assert status == 404 and body == {"error": "no job not-a-job"}


# Jobs ---------------------------------------------------------------------------------------------------------


def test_a_job_of_uploads_runs_like_a_batch(serve_api, calls, tmp_path):
    _, asr, client = serve_api()
    status, headers, job = client.upload(*calls)
    assert status == 202, job
    assert headers["Location"] == f"/api/jobs/{job['job_id']}"
    assert job["total"] == 3 and job["status"] in ("queued", "running", "done")
    job = client.wait(job["job_id"])
    assert (job["status"], job["done"], job["failed"], job["progress"]) == ("done", 3, 0, 1.0)
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]

    status, _, results = client("GET", f"/api/jobs/{job['job_id']}/results")
    assert status == 200
    assert {r["call"]: (r["status"], r["turns"], r["replies"]) for r in results} == {
        "first": ("ok", 1, 1),
        "second": ("ok", 1, 1),
        "third": ("ok", 2, 1),  # stereo: a caller turn and an agent turn
    }
    assert sorted(asr.heard) == [0.5, 0.75, 0.75, 1.0]
    # The same files as `voiceagent batch --out` would write, where the job's own folder is.
    folder = tmp_path / "jobs" / job["job_id"]
    lines = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert lines == results
    status, _, transcript = client("GET", f"/api/jobs/{job['job_id']}/calls/second")
    assert status == 200 and transcript == json.loads((folder / "second" / "transcript.json").read_text())
    assert transcript["turns"][0]["text"] == "1.00 seconds"
    assert transcript["replies"][0] == {
        "turn": 0,
        "caller": "1.00 seconds",
        "reply": "You said 1.00 seconds.",
        "audio": "reply_01.wav",
    }

    reply = f"/api/jobs/{job['job_id']}/calls/second/replies/reply_01.wav"
    status, headers, wav = client("GET", reply)
    assert status == 200 and headers["Content-Type"] == "audio/wav" and wav[:4] == b"RIFF"
    assert wav == (folder / "second" / "reply_01.wav").read_bytes()
    status, headers, part = client("GET", reply, headers={"Range": "bytes=4-11"})
    assert status == 206 and part == wav[4:12]
    assert client("GET", f"/api/jobs/{job['job_id']}/calls/second/replies/reply_02.wav")[0] == 404
    assert client("GET", f"/api/jobs/{job['job_id']}/calls/nobody")[0] == 404

    status, _, listed = client("GET", "/api/jobs")
    assert status == 200 and [j["job_id"] for j in listed] == [job["job_id"]]
    status, _, body = client("DELETE", f"/api/jobs/{job['job_id']}")
    assert status == 200 and body == {"job_id": job["job_id"], "deleted": True}
    assert not folder.exists()
    assert client("GET", f"/api/jobs/{job['job_id']}")[0] == 404
    assert client("DELETE", f"/api/jobs/{job['job_id']}")[0] == 404


def test_a_job_without_replies(serve_api, calls):
    _, _, client = serve_api()
    status, _, job = client.upload(calls[0], reply="false")
    assert status == 202 and job["reply"] is False
    client.wait(job["job_id"])
    _, _, results = client("GET", f"/api/jobs/{job['job_id']}/results")
    assert results[0]["status"] == "ok" and "replies" not in results[0]
    assert client.upload(calls[0], reply="maybe")[0] == 400


def test_a_job_of_server_paths_only_under_the_batch_roots(serve_api, calls, tmp_path):
    outside = tone(tmp_path / "outside.wav", 0.5)
    (tmp_path / "calls" / "link.wav").symlink_to(outside)
    (tmp_path / "calls" / "sub").mkdir()
    tone(tmp_path / "calls" / "sub" / "fourth.wav", 0.25)
    _, _, client = serve_api(batch_roots=[str(tmp_path / "calls")])
    for path in (outside, tmp_path / "calls" / "link.wav", f"{tmp_path}/calls/../outside.wav", "/etc/passwd"):
        status, _, body = client("POST", "/api/jobs", json={"paths": [str(calls[0]), str(path)]})
        assert status == 403, path
        assert "batch_roots" in body["error"]
    status, _, body = client("POST", "/api/jobs", json={"paths": [str(tmp_path / "calls" / "missing.wav")]})
    assert status == 400 and "no such file" in body["error"]
    assert job_folders(tmp_path) == []

    status, _, job = client("POST", "/api/jobs", json={"paths": [str(calls[0]), str(tmp_path / "calls" / "sub")]})
    assert status == 202 and job["total"] == 2
    client.wait(job["job_id"])
    _, _, results = client("GET", f"/api/jobs/{job['job_id']}/results")
    assert {r["call"]: r["file"] for r in results} == {
        "first": str(calls[0]),
        "fourth": str(tmp_path / "calls" / "sub" / "fourth.wav"),
    }


def test_server_paths_are_refused_without_batch_roots(serve_api, calls):
    _, _, client = serve_api()
    status, _, body = client("POST", "/api/jobs", json={"paths": [str(calls[0])]})
    assert status == 403 and "batch_roots" in body["error"]


@pytest.mark.parametrize(
    "body, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"paths": []}', "non-empty list"),
        ('{"paths": "a.wav"}', "non-empty list"),
        ('{"paths": [3]}', "non-empty list"),
        ('{"paths": ["a.wav"], "reply": "yes"}', "'reply'"),
        ('{"paths": ["a.wav"], "replies": true}', "unknown fields: replies"),
    ],
)
def test_bad_json_jobs(serve_api, tmp_path, body, message):
    _, _, client = serve_api(batch_roots=[str(tmp_path)])
    status, _, answer = client("POST", "/api/jobs", data=body, headers={"Content-Type": "application/json"})
    assert status == 400 and message in answer["error"], answer
    assert job_folders(tmp_path) == []


def test_bad_uploads_are_rejected_naming_the_file_and_leave_nothing(serve_api, calls, tmp_path):
    _, asr, client = serve_api()
    noise = np.random.default_rng(7).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    for bad, message in [
        (("notes.txt", b"call me back"), "notes.txt: not a recorded call"),
        (("no_suffix", b"RIFF"), "no_suffix: not a recorded call"),
        (("empty.wav", b""), "empty.wav: not a usable recording: empty file"),
        (("broken.wav", noise), "broken.wav: not a usable recording"),
        (("truncated.flac", calls[0].read_bytes()[:40]), "truncated.flac: not a usable recording"),
    ]:
        status, _, body = client.upload(calls[0], bad)
        assert status == 400, bad[0]
        assert body["error"].startswith(message), body
    status, _, body = client("POST", "/api/jobs", data=aiohttp.FormData({"reply": "true"}, default_to_multipart=True))
    assert status == 400 and body["error"].startswith("no files")
    form = aiohttp.FormData()
    form.add_field("audio", calls[0].read_bytes(), filename="first.wav")
    status, _, body = client("POST", "/api/jobs", data=form)
    assert status == 400 and "unknown form field 'audio'" in body["error"]
    status, _, body = client("POST", "/api/jobs", data=b"first.wav", headers={"Content-Type": "audio/wav"})
    assert status == 415 and "multipart/form-data" in body["error"]
    broken_part = b'--b\r\nContent-Disposition: form-data; name="\xf1\x9f\x82\xa0#\x18"\r\n\r\nx\r\n--b--\r\n'
    status, _, body = client(
        "POST", "/api/jobs", data=broken_part, headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert status == 400 and "not a multipart/form-data body" in body["error"]  # found by schemathesis: was a 500
    assert job_folders(tmp_path) == [] and asr.heard == []
    assert client("GET", "/api/jobs")[2] == []


def test_upload_names_lose_their_path_parts(serve_api, calls, tmp_path):
    _, _, client = serve_api()
    content = calls[0].read_bytes()
    status, _, job = client.upload(
        ("../../escaped.wav", content),
        ("C:\\calls\\..\\win.wav", content),
        (".hidden.wav", content),
        ("same.wav", content),
        ("same.wav", content),
    )
    assert status == 202, job
    uploads = tmp_path / "jobs" / job["job_id"] / "uploads"
    assert sorted(p.name for p in uploads.iterdir()) == [
        "escaped.wav",
        "hidden.wav",
        "same-2.wav",
        "same.wav",
        "win.wav",
    ]
    assert not (tmp_path / "escaped.wav").exists() and not (tmp_path / "jobs" / "escaped.wav").exists()
    client.wait(job["job_id"])
    _, _, results = client("GET", f"/api/jobs/{job['job_id']}/results")
    assert sorted(r["call"] for r in results) == ["escaped", "hidden", "same", "same-2", "win"]


def test_an_upload_over_the_limit_is_refused(serve_api, tmp_path):
    _, asr, client = serve_api(max_upload_mb=0.5)
    big = tone(tmp_path / "big.wav", 20.0)  # 640 kB
    small = tone(tmp_path / "small.wav", 10.0)  # 320 kB: two of them are over the limit too
    for files in ([big], [small, small]):
        for chunked in (False, True):  # told by Content-Length up front, or found while streaming
            status, _, body = client.upload(*files, chunked=chunked)
            assert status == 413, (files, chunked)
            assert "0.5 MB" in body["error"] and "max_upload_mb" in body["error"]
    assert job_folders(tmp_path) == [] and asr.heard == []
    assert client.upload(small)[0] == 202


def test_job_limit_and_a_running_job(serve_api, calls, tmp_path):
    asr = FakeAsr()
    asr.hold()
    _, _, client = serve_api(asr, max_jobs=2)
    first = client.upload(calls[0])[2]
    second = client.upload(calls[1])[2]
    deadline = time.monotonic() + 10
    while client("GET", f"/api/jobs/{first['job_id']}")[2]["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    status, _, body = client.upload(calls[2])
    assert status == 429 and "max_jobs" in body["error"]
    status, _, body = client("POST", "/api/jobs", json={"paths": [str(calls[2])]})
    assert status == 429
    assert len(job_folders(tmp_path)) == 2

    status, _, body = client("DELETE", f"/api/jobs/{first['job_id']}")
    assert status == 409 and "running" in body["error"]
    assert client("DELETE", f"/api/jobs/{second['job_id']}")[0] == 200  # queued: it never runs
    assert client.upload(calls[2])[0] == 202  # a place freed
    asr.release(10)
    assert client.wait(first["job_id"])["status"] == "done"
    assert asr.heard == [0.5, 0.75, 0.75]  # the first call, then the third (stereo); never the second
    statuses = {j["job_id"]: j["status"] for j in client("GET", "/api/jobs")[2]}
    assert second["job_id"] not in statuses and set(statuses.values()) <= {"done", "running", "queued"}


def test_unfinished_jobs_are_queued_again_and_resume_after_a_restart(serve_api, calls, tmp_path, monkeypatch):
    asr = FakeAsr()
    asr.hold()
    asr.release(1)  # the first call goes through; the process "dies" in the second
    served, _, client = serve_api(asr)
    job = client.upload(*calls)[2]
    queued = client.upload(calls[0])[2]
    results = tmp_path / "jobs" / job["job_id"] / "results.jsonl"
    deadline = time.monotonic() + 10
    while not results.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    monkeypatch.setattr(api, "STOP_WAIT_S", 0.2)  # the worker is stuck in a call: the process "dies" with it
    served.stop()
    asr.die()
    assert json.loads((tmp_path / "jobs" / job["job_id"] / "job.json").read_text())["status"] == "running"
    stale = tmp_path / "jobs" / ("f" * 32)
    (stale / "uploads").mkdir(parents=True)  # an upload cut short: no job.json, nothing new for an hour
    for path in (stale, stale / "uploads"):
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    uploading = tmp_path / "jobs" / ("e" * 32)
    (uploading / "uploads").mkdir(parents=True)  # another server's upload in progress
    (uploading / "uploads" / "call.wav").write_bytes(b"RIFF")

    _, again, client = serve_api()
    assert client.wait(job["job_id"])["done"] == 3
    assert client.wait(queued["job_id"])["status"] == "done"
    assert sorted(again.heard) == [0.5, 0.75, 0.75, 1.0]  # first.wav of the old job was not done again
    _, _, lines = client("GET", f"/api/jobs/{job['job_id']}/results")
    assert [r["call"] for r in lines] == ["first", "second", "third"]
    assert job_folders(tmp_path) == sorted([job["job_id"], queued["job_id"], uploading.name])


# Calls --------------------------------------------------------------------------------------------------------


def record(call_id: str, started_at: str, **fields) -> dict:
    return {
        "call_id": call_id,
        "transport": "sip",
        "sample_rate": 8000,
        "started_at": started_at,
        "end_reason": "caller hung up",
        "transfer_to": None,
        "turns": [],
        "slots": {},
        "actions": [],
        **fields,
    }


def test_calls_list_record_audio_and_purge(serve_api, tmp_path):
    served, _, client = serve_api()
    records = tmp_path / "records"
    records.mkdir()
    turns = [
        {"role": "agent", "text": "Hello.", "sentiment": None, "latency": {}},
        {"role": "caller", "text": "Where is my order?", "sentiment": -0.5},
        {"role": "agent", "text": "Which one?", "latency": {"voice_to_voice_ms": 700.0}},
        {"role": "caller", "text": "Thanks, bye.", "sentiment": 0.7},
        {"role": "agent", "text": "Goodbye.", "latency": {"voice_to_voice_ms": 900.0}},
        {"role": "agent", "text": "Bye.", "latency": {"voice_to_voice_ms": 1300.0}},
    ]
    older = record("older", "2026-11-30T10:00:00+00:00", turns=turns, actions=[{"type": "end_call"}])
    (records / "older.json").write_text(json.dumps(older))
    (records / "newer.json").write_text(json.dumps(record("newer", "2026-11-30T11:00:00+00:00")))
    wav = tone(records / "older.wav", 1.0, rate=8000, channels=2).read_bytes()
    (tmp_path / "secret.json").write_text(json.dumps(record("secret", "2026-11-30T09:00:00+00:00")))
    live = record(
        "live",
        "2026-11-30T12:00:00+00:00",
        end_reason="",
        turns=[{"role": "caller", "text": "my card is 4111 1111 1111 1111", "sentiment": 0.0}],
    )
    session = FakeSession(live, served.server.engine.redactor)
    served.server.calls["live"] = session
    (records / "live.json").write_text(json.dumps({**live, "turns": []}))  # on disk: older than its snapshot
    (records / "list.json").write_text("[1, 2]")  # JSON, but no record
    try:
        status, _, listed = client("GET", "/api/calls")
        assert status == 200
        assert [c["call_id"] for c in listed] == ["live", "newer", "older"]
        assert listed[2] == {
            "call_id": "older",
            "transport": "sip",
            "started_at": "2026-11-30T10:00:00+00:00",
            "end_reason": "caller hung up",
            "active": False,
            "caller_turns": 2,
            "actions": ["end_call"],
            "voice_to_voice_ms": 900.0,
            "sentiment": 0.1,
            "has_audio": True,
        }
        assert (listed[0]["active"], listed[0]["caller_turns"], listed[0]["has_audio"]) == (True, 1, False)
        assert (listed[1]["voice_to_voice_ms"], listed[1]["sentiment"], listed[1]["has_audio"]) == (None, None, False)

        status, _, body = client("GET", "/api/calls/older")
        assert status == 200 and body == {**older, "active": False, "has_audio": True}
        status, _, body = client("GET", "/api/calls/live")
        assert status == 200 and body["active"] is True
        assert body["turns"][0]["text"] == "my card is [card]"  # in memory it is whole; out of the API, never
        status, _, body = client("GET", "/api/calls/live/audio")
        assert status == 409 and "in progress" in body["error"]
        assert client("DELETE", "/api/calls/live")[0] == 409

        status, headers, audio = client("GET", "/api/calls/older/audio")
        assert status == 200 and headers["Content-Type"] == "audio/wav" and audio == wav
        assert headers["Accept-Ranges"] == "bytes"
        status, headers, part = client("GET", "/api/calls/older/audio", headers={"Range": "bytes=100-199"})
        assert status == 206 and part == wav[100:200]
        assert headers["Content-Range"] == f"bytes 100-199/{len(wav)}"
        assert client("GET", "/api/calls/newer/audio")[0] == 404

        for sneaky in ("..%2Fsecret", "%2E%2E%2Fsecret", "..", "..%2F..%2Fetc%2Fpasswd", "nobody"):
            assert client("GET", f"/api/calls/{sneaky}")[0] == 404, sneaky
            assert client("GET", f"/api/calls/{sneaky}/audio")[0] == 404, sneaky
            assert client("DELETE", f"/api/calls/{sneaky}")[0] == 404, sneaky
        assert (tmp_path / "secret.json").exists()

        status, _, body = client("DELETE", "/api/calls/older")
        assert status == 200 and sorted(Path(p).name for p in body["deleted"]) == ["older.json", "older.wav"]
        assert not (records / "older.json").exists() and not (records / "older.wav").exists()
        assert client("GET", "/api/calls/older")[0] == 404
        assert client("DELETE", "/api/calls/older")[0] == 404

        # Hung up, but its record and audio are still being written: in progress until it has finished.
        (records / "live.wav").write_bytes(wav)
        served.loop.call_soon_threadsafe(served.server.call_ended, session)
        deadline = time.monotonic() + 5
        while "live" in served.server.calls:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert client("DELETE", "/api/calls/live")[0] == 409
        assert client("GET", "/api/calls/live/audio")[0] == 409
        session.finished.set()
        assert client("GET", "/api/calls/live/audio")[0] == 200
        assert client("DELETE", "/api/calls/live")[0] == 200
        assert not (records / "live.json").exists() and not (records / "live.wav").exists()
    finally:
        served.server.calls.pop("live", None)


def test_a_call_of_a_job_is_purged_from_that_job_only(serve_api, calls, tmp_path):
    asr = FakeAsr()
    asr.hold()
    _, _, client = serve_api(asr)
    running = client.upload(calls[1])[2]
    deadline = time.monotonic() + 10
    while client("GET", f"/api/jobs/{running['job_id']}")[2]["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    status, _, body = client("DELETE", f"/api/jobs/{running['job_id']}/calls/second")
    assert status == 409 and "running" in body["error"]  # its worker writes those files: not touched
    job = client.upload(*calls)[2]
    assert client("DELETE", f"/api/jobs/{job['job_id']}/calls/second")[0] == 409  # queued
    asr.release(10)
    client.wait(running["job_id"])
    client.wait(job["job_id"])

    # A live call's id names no job's call: DELETE /api/calls/second leaves every job alone.
    assert client("DELETE", "/api/calls/second")[0] == 404
    folder = tmp_path / "jobs" / job["job_id"]
    status, _, body = client("DELETE", f"/api/jobs/{job['job_id']}/calls/second")
    assert status == 200 and str(folder / "second") in body["deleted"]
    assert not (folder / "second").exists() and not (folder / "uploads" / "second.wav").exists()
    assert [r["call"] for r in client("GET", f"/api/jobs/{job['job_id']}/results")[2]] == ["first", "third"]
    assert [r["call"] for r in client("GET", f"/api/jobs/{running['job_id']}/results")[2]] == ["second"]
    assert client("DELETE", f"/api/jobs/{job['job_id']}/calls/second")[0] == 404
    for own in ("uploads", "job.json", "results.jsonl", ".."):  # a job's own files are no call
        assert client("DELETE", f"/api/jobs/{job['job_id']}/calls/{own}")[0] == 404
    assert (folder / "job.json").exists() and (folder / "uploads" / "first.wav").exists()


def test_two_deletes_of_one_job_at_once(serve_api, calls):
    served, _, client = serve_api()
    job = client.upload(calls[0])[2]
    client.wait(job["job_id"])
    host, port = served.address("http")

    async def both():
        async with aiohttp.ClientSession() as http:

            async def delete():
                async with http.delete(f"http://{host}:{port}/api/jobs/{job['job_id']}") as response:
                    return response.status

            return sorted(await asyncio.gather(delete(), delete(), delete()))

    assert asyncio.run(both()) == [200, 404, 404]


def test_retention_goes_through_the_jobs(serve_api, calls, tmp_path):
    asr = FakeAsr()
    served, _, client = serve_api(asr)
    done = client.upload(calls[0])[2]
    client.wait(done["job_id"])
    asr.hold()
    running = client.upload(calls[1])[2]
    jobs = tmp_path / "jobs"
    deadline = time.monotonic() + 10
    while client("GET", f"/api/jobs/{running['job_id']}")[2]["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    old = time.time() - 3 * 86400
    for path in jobs.rglob("*"):
        os.utime(path, (old, old))
    for job in (done, running):
        os.utime(jobs / job["job_id"], (old, old))
    removed = served.server.jobs.purge_older_than(1.0)
    assert removed == [jobs / done["job_id"]]  # the running job's folder is not touched
    assert (jobs / running["job_id"] / "job.json").exists()
    assert client("GET", f"/api/jobs/{done['job_id']}")[0] == 404  # forgotten, not listed without a folder
    assert [j["job_id"] for j in client("GET", "/api/jobs")[2]] == [running["job_id"]]
    asr.release(10)
    client.wait(running["job_id"])


# The OpenAPI document -----------------------------------------------------------------------------------------


def test_the_openapi_document_is_valid_and_describes_every_route(serve_api):
    from openapi_spec_validator import validate

    _, _, client = serve_api(token=TOKEN)
    status, _, document = client("GET", "/api/openapi.json")
    assert status == 200 and document == json.loads(json.dumps(openapi.document()))
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    api_routes = api.Api(None, None, {"max_upload_mb": 1, "batch_roots": []}).routes()
    served_routes = {(route.path, route.method.lower()) for route in api_routes} | {("/api/softphone", "get")}
    described = {(path, method) for path, item in document["paths"].items() for method in item}
    described -= {(path, "parameters") for path in document["paths"]}
    assert served_routes == described
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                assert "401" in operation["responses"], (path, method)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """A server with fake stages, a token, one finished job and a batch root, for schemathesis: its base URL."""
    folder = tmp_path_factory.mktemp("fuzzed")
    engine = Engine(FakeVad(), FakeAsr(), FakeAgent(), FakeTts(), records=folder / "records")
    options = {"jobs": str(folder / "jobs"), "token": TOKEN, "batch_roots": [str(folder)], "max_jobs": 100}
    served = Served(TelephonyServer(engine, api_options=options))
    client = Client(served, TOKEN)
    client.wait(client.upload(tone(folder / "first.wav", 0.5))[2]["job_id"])
    yield client.base
    served.stop()


SCHEMA = schemathesis.openapi.from_dict(openapi.document())


@SCHEMA.parametrize()
@hypothesis.settings(max_examples=10, derandomize=True, deadline=None, database=None)
def test_the_live_api_conforms_to_its_document(case, fuzzed):
    """Schemathesis sends what the document allows (and, for each route, what it does not) to the live server:
    every answer must be one the document lists, with a body that fits its schema, and never a 5xx. (A job's
    files fit the schema as any bytes, but only audio is accepted; the softphone answers only a WebSocket handshake,
    which schemathesis does not make: those refusals are the API's job, not a fault.)"""
    on_purpose = case.path in ("/api/jobs", "/api/softphone")
    refused_on_purpose = [schemathesis.checks.positive_data_acceptance] if on_purpose else []
    case.call_and_validate(
        base_url=fuzzed, headers={"Authorization": f"Bearer {TOKEN}"}, excluded_checks=refused_on_purpose
    )


# On the real models -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_job_gives_what_voiceagent_batch_writes(cli, config, fixtures, tmp_path):
    files = [fixtures / name for name in ("call_phone_8k_mulaw.wav", "call_stereo_22k.wav", "jfk.wav")]
    shops = []
    for name in ("cli", "api"):  # each run its own shop database: a cancelled order stays cancelled for that run
        (tmp_path / name).mkdir()
        shops.append(shutil.copy(ROOT / "configs" / "domains" / "shop.toml", tmp_path / name / "shop.toml"))
    started = time.monotonic()
    code, _, err = cli(
        "--config",
        DETERMINISTIC,
        "batch",
        *files,
        "--out",
        tmp_path / "batch",
        "--quiet",
        "--no-lm",
        "--domain",
        shops[0],
    )
    assert code == 0, err
    batch_s = time.monotonic() - started

    engine = Engine.from_config(
        {**config, "dialogue": {**config["dialogue"], "domain": str(shops[1])}},
        records=tmp_path / "records",
        no_lm=True,
    )
    served = Served(TelephonyServer(engine, api_options={"jobs": str(tmp_path / "jobs")}))
    try:
        client = Client(served)
        started = time.monotonic()
        status, _, job = client.upload(*files)
        assert status == 202, job
        job = client.wait(job["job_id"], timeout_s=600)
        api_s = time.monotonic() - started
        assert (job["status"], job["done"], job["failed"]) == ("done", 3, 0)
        _, _, results = client("GET", f"/api/jobs/{job['job_id']}/results")
        expected = [json.loads(line) for line in (tmp_path / "batch" / "results.jsonl").read_text().splitlines()]

        def without_file(item: dict) -> dict:  # the file is the upload's copy, not the original
            return {key: value for key, value in item.items() if key != "file"}

        assert [without_file(r) for r in results] == [without_file(r) for r in expected]
        for result in expected:
            call = result["call"]
            _, _, transcript = client("GET", f"/api/jobs/{job['job_id']}/calls/{call}")
            written = json.loads((tmp_path / "batch" / call / "transcript.json").read_text())
            assert without_file(transcript) == without_file(written)
            assert transcript["turns"] and transcript["replies"]
            for reply in written["replies"]:
                status, _, wav = client("GET", f"/api/jobs/{job['job_id']}/calls/{call}/replies/{reply['audio']}")
                assert status == 200 and wav == (tmp_path / "batch" / call / reply["audio"]).read_bytes()
    finally:
        served.stop()
    print(f"3 fixture calls: voiceagent batch {batch_s:.1f} s (models loaded), API job {api_s:.1f} s")


@pytest.mark.slow
def test_a_live_call_is_in_the_calls_while_it_runs_and_after(serve, voice):  # noqa: F811 (the fixture)
    served = serve()
    client = Client(served)
    call_sid = "CA" + uuid.uuid4().hex
    said = voice.speak("My card number is 4111 1111 1111 1111.", LINE).trim()

    async def call():
        async with aiohttp.ClientSession() as http, http.ws_connect(media_url(served)) as ws:
            peer = TwilioPeer(ws, "MZ" + uuid.uuid4().hex)
            await peer.start(call_sid)
            await peer.line.answer()
            await peer.line.say(said)
            await peer.line.answer()
            status, _, listed = await asyncio.to_thread(client, "GET", "/api/calls")
            assert status == 200 and listed[0]["call_id"] == call_sid and listed[0]["active"] is True
            assert listed[0]["caller_turns"] == 1 and listed[0]["voice_to_voice_ms"] > 0
            status, _, record = await asyncio.to_thread(client, "GET", f"/api/calls/{call_sid}")
            assert status == 200 and record["active"] is True
            caller = [turn["text"] for turn in record["turns"] if turn["role"] == "caller"]
            assert len(caller) == 1 and "[card]" in caller[0]
            assert "4111" not in json.dumps(record) and "one one one" not in json.dumps(record)
            assert (await asyncio.to_thread(client, "GET", f"/api/calls/{call_sid}/audio"))[0] == 409
            await peer.line.hang_up()
            await peer.closed()

    asyncio.run(call())
    deadline = time.monotonic() + 10
    while (listed := client("GET", "/api/calls")[2])[0]["active"]:
        assert time.monotonic() < deadline, listed
        time.sleep(0.05)
    assert listed[0]["call_id"] == call_sid and listed[0]["end_reason"] and listed[0]["has_audio"]
    status, headers, wav = client("GET", f"/api/calls/{call_sid}/audio")
    assert status == 200 and wav[:4] == b"RIFF" and len(wav) > 8000 * 2 * 2  # stereo, over a second
    status, _, part = client("GET", f"/api/calls/{call_sid}/audio", headers={"Range": "bytes=0-43"})
    assert status == 206 and part == wav[:44]
    status, _, body = client("DELETE", f"/api/calls/{call_sid}")
    assert status == 200 and {Path(p).suffix for p in body["deleted"]} == {".json", ".wav"}
    assert client("GET", "/api/calls")[2] == []
