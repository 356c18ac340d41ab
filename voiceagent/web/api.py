"""The HTTP API of ``voiceagent serve`` under ``/api/``, described by the OpenAPI 3.1 document at
``GET /api/openapi.json`` (voiceagent/web/openapi.py).

**Jobs**: ``POST /api/jobs`` takes recorded calls as uploads (multipart ``file`` parts, streamed to disk up to
``[api] max_upload_mb``, each checked as audio from its header and first frames (``probe_audio``) before the job
is accepted: a rejected job leaves nothing behind) or as paths on the server under ``[api] batch_roots``. Jobs run
one at a time on a worker thread with the server's loaded stages (``run_batch``), into ``<[api] jobs>/<job id>/``:
the layout of ``voiceagent batch --out``, the uploads in ``uploads/``, the job's state in ``job.json``. Unfinished
jobs are queued again when the server starts, and their batch goes on from the calls its results log has not got yet.
A folder without ``job.json`` is an upload in progress (this server's or another's sharing the folder): removed
at start only once nothing in it has changed for ``STALE_UPLOAD_S``. Every change to a job's files (deleting it,
purging a call of it, retention) goes through ``Jobs``, and never touches a job that is queued or running.

**Calls**: the calls in progress (their record as last saved, redacted) and the finished ones
(``<records>/<call id>.json``, with the call's audio beside it as ``<call id>.wav``). ``DELETE
/api/calls/{call_id}`` removes that record and its audio, nothing else: a job's calls are named after their files,
not after live calls, so one of them is removed with ``DELETE /api/jobs/{job_id}/calls/{call}``. A call that has
hung up but is still writing its record or audio is in progress (409) until it has finished.

**Auth**: with ``[api] token`` set, every path under /api/ (the softphone's WebSocket and audio files too) needs
``Authorization: Bearer <token>`` or ``?token=<token>`` (a browser cannot put a header on a WebSocket or an
``<audio src>``); without one the API answers only requests whose Host is a loopback name (127.0.0.1,
localhost or [::1], any port), so that a web page cannot reach it by DNS rebinding (a name of the attacker's
that resolves to 127.0.0.1): 403 for any other Host. And whatever the token, a request with an ``Origin`` header
whose host:port is not the request's Host is refused (403): another site's page cannot open the softphone's
WebSocket or submit a form to /api/jobs in the operator's browser. Clients that send no Origin (curl, scripts)
are not affected. Every error under /api/ is JSON: ``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import datetime
import hmac
import json
import logging
import queue
import re
import shutil
import statistics
import threading
import time
import uuid
from pathlib import Path

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from voiceagent.audio import probe_audio
from voiceagent.batch import AUDIO_SUFFIXES, ResultsLog, find_calls, run_batch
from voiceagent.files import write_atomically
from voiceagent.privacy import purge_call, purge_older_than, record_name, records_in
from voiceagent.telephony.server import TelephonyServer

log = logging.getLogger("voiceagent.api")

JOB_ID = re.compile(r"[0-9a-f]{32}")
REPLY_NAME = re.compile(r"reply_\d+\.wav")
UNFINISHED = ("queued", "running")
#: What a job's folder holds besides its calls' folders.
JOB_FILES = ("uploads", "job.json", "results.jsonl")
MB = 1024 * 1024
#: A job folder without job.json that has not changed for this long is an upload that was cut short.
STALE_UPLOAD_S = 600.0
#: How long stopping waits for the job running to finish (it is queued again at the next start if it does not).
STOP_WAIT_S = 10.0
#: The Host names the API answers without a token.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def setup(app: web.Application, server: TelephonyServer) -> None:
    """Add the /api/ routes, the auth and error middleware, and the jobs' worker thread (started and stopped with
    the app) to ``app``."""
    options = server.api_options
    jobs = Jobs(Path(options["jobs"]), server.engine, int(options["max_jobs"]))
    server.jobs = jobs  # the server's retention pass goes through them too
    api = Api(server, jobs, options)
    app.middlewares.append(_api_middleware(str(options["token"])))
    app.add_routes(api.routes())

    async def start_worker(app: web.Application) -> None:
        jobs.start()

    async def stop_worker(app: web.Application) -> None:
        await asyncio.to_thread(jobs.stop)

    app.on_startup.append(start_worker)
    app.on_cleanup.append(stop_worker)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def _error(status: type[web.HTTPException], message: str, **options) -> web.HTTPException:
    """An HTTP error whose body is ``{"error": message}``, to raise."""
    return status(text=json.dumps({"error": message}), content_type="application/json", **options)


def _api_middleware(token: str):
    """For every path under /api/: a request from another site's page refused (``Origin``), without ``token`` a
    Host that is not a loopback name refused, with it the bearer token required; and aiohttp's own errors there
    (404, 405, 413...) as JSON like the API's."""

    @web.middleware
    async def api(request: web.Request, handler) -> web.StreamResponse:
        if request.path != "/api" and not request.path.startswith("/api/"):
            return await handler(request)
        origin = request.headers.get("Origin")
        if origin is not None and origin.partition("://")[2].lower() != request.host.lower():
            raise _error(
                web.HTTPForbidden,
                f"a request from another site's page ({origin[:100]}) is refused: only pages served by "
                f"{request.host[:100]} may use this API",
            )
        if not token and _host_name(request.host) not in LOOPBACK_HOSTS:
            raise _error(
                web.HTTPForbidden,
                f"without [api] token this API answers only requests to 127.0.0.1, localhost or [::1], "
                f"not {request.host[:100]}: set [api] token to serve other hosts",
            )
        if token and not _authorized(request, token):
            raise _error(
                web.HTTPUnauthorized,
                "this API needs its token: send 'Authorization: Bearer <token>' or add ?token=<token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400 or exc.content_type == "application/json":
                raise
            headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
            message = f"{exc.reason}: {request.method} {request.path}"
            if exc.status == 405:
                message += f" (allowed: {headers.get('Allow', '')})"
            return web.json_response({"error": message}, status=exc.status, headers=headers)

    return api


def _host_name(host: str) -> str:
    """The name in a Host header, without its port: "[::1]:8080" is "::1", "localhost:8080" "localhost"."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if ":" in host else host


def _authorized(request: web.Request, token: str) -> bool:
    given = request.query.get("token", "")
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        given = credentials.strip()
    return hmac.compare_digest(given.encode(), token.encode())  # constant time: the token cannot be guessed by timing


class Jobs:
    """The API's batch jobs: one folder each under ``root``, run one at a time on a worker thread with the
    engine's stages. A job's state (``job.json``) is written atomically at each change, so a restarted server
    finds every job as it was and queues the unfinished ones again."""

    def __init__(self, root: Path, engine, max_jobs: int):
        self.root = root
        self.engine = engine
        self.max_jobs = max_jobs
        self._jobs: dict[str, dict] = {}  # job id -> its state, oldest first
        self._lock = threading.Lock()  # the worker thread changes states the event loop reads
        # Held while a job's files are removed (deleting a job, purging a call, retention), so that two of those
        # never work on one folder at once; never held on the event loop.
        self._files_lock = threading.Lock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._load()

    def _load(self) -> None:
        if not self.root.is_dir():
            return
        found = []
        for folder in self.root.iterdir():
            if not (folder.is_dir() and JOB_ID.fullmatch(folder.name)):
                continue
            try:
                job = json.loads((folder / "job.json").read_text(encoding="utf-8"))
            except FileNotFoundError:
                # An upload in progress (another server may share the folder), or one cut short if it is stale.
                if _last_change(folder) < time.time() - STALE_UPLOAD_S:
                    shutil.rmtree(folder, ignore_errors=True)
                continue
            except (OSError, ValueError) as exc:
                log.warning("job %s skipped: its job.json cannot be read (%s)", folder.name, exc)
                continue
            found.append({**job, "job_id": folder.name})
        for job in sorted(found, key=lambda job: job["created_at"]):
            self._jobs[job["job_id"]] = job
            if job["status"] in UNFINISHED:
                job["status"] = "queued"
                self._save(job)
                self._queue.put(job["job_id"])
                resumes = "resumes" if self.results(job) else "from the start"
                log.info("job %s queued again (%s)", job["job_id"], resumes)

    def start(self) -> None:
        """Start the worker thread: the queued jobs run, one at a time."""
        self._worker = threading.Thread(target=self._run, name="api-jobs", daemon=True)
        self._worker.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Tell the worker to stop once the job running (if any) has finished, and wait for it up to
        ``timeout_s`` (``STOP_WAIT_S``): no job starts after this. A job still running then ends with the process
        and is queued again at the next start, going on from the calls its results log has."""
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(STOP_WAIT_S if timeout_s is None else timeout_s)
            if self._worker.is_alive():
                log.warning("a job is still running: it is queued again at the next start")

    def folder(self, job_id: str) -> Path:
        """The folder of a job (whether or not it exists)."""
        return self.root / job_id

    def new_folder(self) -> tuple[str, Path]:
        """A fresh job id and its folder (with ``uploads/``), not yet a job: ``add`` makes it one."""
        job_id = uuid.uuid4().hex
        (self.folder(job_id) / "uploads").mkdir(parents=True)
        return job_id, self.folder(job_id)

    def full(self) -> bool:
        """Whether ``max_jobs`` jobs are queued or running: no more are taken."""
        return self.unfinished() >= self.max_jobs

    def unfinished(self) -> int:
        """The jobs queued or running."""
        with self._lock:
            return sum(job["status"] in UNFINISHED for job in self._jobs.values())

    def add(self, job_id: str, inputs: list[str], reply: bool, total: int) -> dict:
        """Queue the job of ``job_id``'s folder over ``inputs`` (files and folders: ``total`` calls); its view."""
        job = {
            "job_id": job_id,
            "status": "queued",
            "reply": reply,
            "inputs": inputs,
            "total": total,
            "created_at": _now(),
            "started_at": None,
            "finished_at": None,
            "error": None,
        }
        self._save(job)
        with self._lock:
            self._jobs[job_id] = job
        self._queue.put(job_id)
        return self.view(job)

    def get(self, job_id: str) -> dict | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else dict(job)

    def all(self) -> list[dict]:
        """Every job, newest first."""
        with self._lock:
            return [dict(job) for job in reversed(self._jobs.values())]

    def delete(self, job_id: str) -> str:
        """Forget a job that is not running and remove its folder: "deleted", "running" (left as it is) or
        "missing" (no such job: never was, or deleted by a request before this one)."""
        with self._files_lock:
            with self._lock:
                job = self._jobs.get(job_id)
                if job is None:
                    return "missing"
                if job["status"] == "running":
                    return "running"
                del self._jobs[job_id]  # a queued job is skipped when the worker comes to it
            shutil.rmtree(self.folder(job_id), ignore_errors=True)
            return "deleted"

    def purge_call(self, job_id: str, call: str) -> list[Path] | None:
        """Remove one call of a finished job (``privacy.purge_call``: its folder, its upload, its results line);
        what was removed, or None while the job is queued or running (its worker writes those files)."""
        with self._files_lock:  # a finished job never runs again: only another removal could interfere
            job = self.get(job_id)
            if job is None or job["status"] in UNFINISHED:
                return None
            return purge_call(call, None, [self.folder(job_id)])

    def purge_older_than(self, days: float) -> list[Path]:
        """Retention: ``privacy.purge_older_than`` over the finished jobs' folders (those queued or running are
        not touched); a job whose whole folder went is forgotten. What was removed."""
        removed = []
        with self._files_lock:
            for job in self.all():
                if job["status"] not in UNFINISHED:
                    removed += purge_older_than(days, None, [self.folder(job["job_id"])])
                    if not self.folder(job["job_id"]).exists():
                        with self._lock:
                            self._jobs.pop(job["job_id"], None)
        return removed

    def results(self, job: dict) -> list[dict]:
        """The job's results log: one line per finished call, the same JSON as ``voiceagent batch`` writes."""
        return ResultsLog.read(self.folder(job["job_id"]) / "results.jsonl")

    def view(self, job: dict) -> dict:
        """The job as the API shows it: its state and its progress from the results log."""
        results = self.results(job)
        done = len(results)
        return {
            **job,
            "done": done,
            "failed": sum(result.get("status") == "error" for result in results),
            "progress": round(done / job["total"], 3) if job["total"] else 1.0,
        }

    def _save(self, job: dict) -> None:
        write_atomically(self.folder(job["job_id"]) / "job.json", json.dumps(job, indent=1, ensure_ascii=False))

    def _run(self) -> None:
        """The worker: each queued job in turn, until ``stop``."""
        while (job_id := self._queue.get()) is not None:
            with self._lock:
                job = self._jobs.get(job_id)
                if job is None or job["status"] != "queued":  # deleted while it waited
                    continue
                job.update(status="running", started_at=job["started_at"] or _now())
                self._save(job)
            log.info("job %s started: %d calls", job_id, job["total"])
            engine = self.engine
            agent, tts = (engine.agent, engine.tts) if job["reply"] else (None, None)
            try:
                run_batch(
                    job["inputs"],
                    self.folder(job_id),
                    engine.vad,
                    engine.asr,
                    agent,
                    tts,
                    progress=False,
                    redactor=engine.redactor,
                )
            except Exception as exc:  # a stage that will not load, a full disk: this job fails, the server goes on
                log.exception("job %s failed", job_id)
                self._finish(job, "failed", f"{type(exc).__name__}: {exc}")
            else:
                self._finish(job, "done")

    def _finish(self, job: dict, status: str, error: str | None = None) -> None:
        with self._lock:
            job.update(status=status, finished_at=_now(), error=error)
            self._save(job)
        log.info("job %s %s", job["job_id"], status)


class Api:
    """The handlers of every /api/ route, over one server and its jobs."""

    def __init__(self, server: TelephonyServer, jobs: Jobs, options: dict):
        self.server = server
        self.jobs = jobs
        self.max_upload_bytes = int(float(options["max_upload_mb"]) * MB)
        self.batch_roots = [Path(root).resolve() for root in options["batch_roots"]]

    def routes(self) -> list[web.RouteDef]:
        """Every /api/ route this serves (the softphone's WebSocket, /api/softphone, is in web/softphone.py)."""
        return [
            web.get("/api/openapi.json", self.openapi),
            web.get("/api/calls", self.list_calls),
            web.get("/api/calls/{call_id}", self.get_call),
            web.delete("/api/calls/{call_id}", self.delete_call),
            web.get("/api/calls/{call_id}/audio", self.call_audio),
            web.post("/api/jobs", self.submit_job),
            web.get("/api/jobs", self.list_jobs),
            web.get("/api/jobs/{job_id}", self.get_job),
            web.delete("/api/jobs/{job_id}", self.delete_job),
            web.get("/api/jobs/{job_id}/results", self.job_results),
            web.get("/api/jobs/{job_id}/calls/{call}", self.job_call),
            web.delete("/api/jobs/{job_id}/calls/{call}", self.delete_job_call),
            web.get("/api/jobs/{job_id}/calls/{call}/replies/{name}", self.job_reply),
        ]

    async def openapi(self, request: web.Request) -> web.Response:
        from voiceagent.web.openapi import document

        return web.json_response(document())

    # Calls --------------------------------------------------------------------------------------------------------

    @property
    def records(self) -> Path | None:
        return self.server.engine.records

    def _active_record(self, call_id: str) -> dict | None:
        """A call in progress: its record as last saved, redacted (never its live state: its threads change it)."""
        session = self.server.calls.get(call_id)
        return None if session is None else session.snapshot()

    def _finished_record(self, call_id: str) -> dict | None:
        if self.records is None:
            return None
        try:  # record_name keeps it a file name in the folder: no "/" that could climb out
            return json.loads((self.records / f"{record_name(call_id)}.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise _error(web.HTTPInternalServerError, f"the record of call {call_id} cannot be read: {exc}") from exc

    def _audio(self, call_id: str) -> Path | None:
        if self.records is None:
            return None
        path = self.records / f"{record_name(call_id)}.wav"
        return path if path.is_file() else None

    def _finished_summaries(self) -> dict[str, dict]:
        """The summary of each call record on disk, by call id (on a worker thread: it reads every record)."""
        if self.records is None:
            return {}
        return {
            str(record["call_id"]): self._summary(str(record["call_id"]), record, active=False)
            for record in records_in(self.records)
        }

    async def list_calls(self, request: web.Request) -> web.Response:
        calls = await asyncio.to_thread(self._finished_summaries)
        for call_id in list(self.server.calls):  # a call in progress has a record on disk too: this one is newer
            record = self._active_record(call_id)
            if record is not None:
                calls[call_id] = self._summary(call_id, record, active=True)
        return web.json_response(sorted(calls.values(), key=lambda call: call["started_at"] or "", reverse=True))

    def _summary(self, call_id: str, record: dict, active: bool) -> dict:
        turns = record.get("turns") or []
        sentiments = [t["sentiment"] for t in turns if t.get("role") == "caller" and t.get("sentiment") is not None]
        latencies = [(t.get("latency") or {}).get("voice_to_voice_ms") for t in turns]
        latencies = [ms for ms in latencies if ms is not None]
        return {
            "call_id": call_id,
            "transport": record.get("transport", ""),
            "started_at": record.get("started_at"),
            "end_reason": record.get("end_reason", ""),
            "active": active,
            "caller_turns": sum(t.get("role") == "caller" for t in turns),
            "actions": [action.get("type") for action in record.get("actions") or []],
            "voice_to_voice_ms": statistics.median(latencies) if latencies else None,
            "sentiment": round(statistics.fmean(sentiments), 3) if sentiments else None,
            "has_audio": not active and self._audio(call_id) is not None,
        }

    async def get_call(self, request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        record = self._active_record(call_id)
        active = record is not None
        if record is None:
            record = await asyncio.to_thread(self._finished_record, call_id)
        if record is None:
            raise _error(web.HTTPNotFound, f"no call {call_id}")
        has_audio = not active and await asyncio.to_thread(self._audio, call_id) is not None
        return web.json_response({**record, "active": active, "has_audio": has_audio})

    async def call_audio(self, request: web.Request) -> web.StreamResponse:
        call_id = request.match_info["call_id"]
        if self.server.in_progress(call_id):
            raise _error(web.HTTPConflict, f"call {call_id} is in progress: its audio is written when it ends")
        path = await asyncio.to_thread(self._audio, call_id)
        if path is None:
            raise _error(web.HTTPNotFound, f"no audio of call {call_id}")
        return web.FileResponse(path, headers={"Content-Type": "audio/wav"})  # Range requests: an <audio> can seek

    async def delete_call(self, request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        if self.server.in_progress(call_id):
            raise _error(web.HTTPConflict, f"call {call_id} is in progress: delete it once it has ended")
        deleted = await asyncio.to_thread(purge_call, call_id, self.records) if self.records is not None else []
        if not deleted:
            raise _error(web.HTTPNotFound, f"no call {call_id}: nothing of it was found")
        return web.json_response({"call_id": call_id, "deleted": [str(path) for path in deleted]})

    # Jobs ---------------------------------------------------------------------------------------------------------

    def _room_for_a_job(self) -> None:
        if self.jobs.full():
            raise _error(
                web.HTTPTooManyRequests,
                f"{self.jobs.unfinished()} jobs are queued or running, the most [api] max_jobs allows: "
                "submit again when one has finished",
            )

    async def submit_job(self, request: web.Request) -> web.Response:
        self._room_for_a_job()
        multipart = request.content_type == "multipart/form-data"
        if multipart and request.content_length is not None and request.content_length > self.max_upload_bytes:
            raise self._too_large()
        job_id, folder = self.jobs.new_folder()
        try:
            if multipart:
                inputs, reply = await self._receive_uploads(request, folder / "uploads")
            elif request.content_type == "application/json":
                inputs, reply = await self._server_paths(request)
            else:
                raise _error(
                    web.HTTPUnsupportedMediaType,
                    "a job is multipart/form-data (file parts) or application/json (paths), "
                    f"not '{request.content_type}'",
                )
            total = len(await asyncio.to_thread(find_calls, inputs))
            self._room_for_a_job()  # others may have been accepted while this one uploaded
            job = self.jobs.add(job_id, inputs, reply, total)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # a rejected job leaves nothing behind
            raise
        log.info("job %s queued: %d calls", job_id, total)
        return web.json_response(job, status=202, headers={"Location": f"/api/jobs/{job_id}"})

    def _too_large(self) -> web.HTTPException:
        return _error(
            web.HTTPRequestEntityTooLarge,
            f"the upload is larger than {self.max_upload_bytes / MB:g} MB ([api] max_upload_mb)",
            max_size=self.max_upload_bytes,
            actual_size=0,
        )

    async def _receive_uploads(self, request: web.Request, uploads: Path) -> tuple[list[str], bool]:
        """Each ``file`` part streamed into ``uploads`` (never more than the limit on the whole upload, never all
        of it in memory), then read as audio; the files and the ``reply`` field."""
        files: list[Path] = []
        try:
            reply = await self._stream_parts(await request.multipart(), uploads, files)
        except (ValueError, HttpProcessingError) as exc:  # no boundary, a broken part header (InvalidHeader)
            raise _error(web.HTTPBadRequest, f"not a multipart/form-data body: {exc}") from exc
        if not files:
            raise _error(web.HTTPBadRequest, "no files: send the recorded calls as multipart 'file' parts")
        for path in files:
            try:
                await asyncio.to_thread(probe_audio, path)
            except Exception as exc:  # AudioError, or whatever a decoder raises on a file it chokes on
                raise _error(web.HTTPBadRequest, f"{path.name}: not a usable recording: {exc}") from exc
        return [str(path.resolve()) for path in files], reply

    async def _stream_parts(self, reader: MultipartReader, uploads: Path, files: list[Path]) -> bool:
        """Write each file part into ``uploads`` (adding it to ``files``); the ``reply`` field."""
        received = 0
        reply = True
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise _error(web.HTTPBadRequest, "a multipart part inside a part: send plain 'file' parts")
            if part.name == "reply":
                value = b""
                while len(value) <= 16 and (chunk := await part.read_chunk()):  # a word, never a stream held
                    value += chunk
                reply = _boolean(value.decode(errors="replace").strip(), "reply")
                continue
            if part.name != "file":
                raise _error(web.HTTPBadRequest, f"unknown form field '{part.name}': send 'file' parts (and 'reply')")
            path = uploads / _upload_name(part.filename or "", uploads, files)
            with open(path, "wb") as f:
                while chunk := await part.read_chunk(1 << 16):
                    received += len(chunk)
                    if received > self.max_upload_bytes:
                        raise self._too_large()
                    f.write(chunk)
            files.append(path)
        return reply

    async def _server_paths(self, request: web.Request) -> tuple[list[str], bool]:
        """The files and folders of a JSON job, each checked to lie under ``[api] batch_roots``."""
        try:
            body = await request.json()
        except ValueError as exc:
            raise _error(web.HTTPBadRequest, f"the body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise _error(web.HTTPBadRequest, 'the body must be a JSON object: {"paths": [...], "reply": true}')
        unknown = sorted(set(body) - {"paths", "reply"})
        if unknown:
            raise _error(web.HTTPBadRequest, f"unknown fields: {', '.join(unknown)} (a job takes 'paths' and 'reply')")
        paths = body.get("paths")
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
            raise _error(web.HTTPBadRequest, "'paths' must be a non-empty list of file or folder paths")
        reply = body.get("reply", True)
        if not isinstance(reply, bool):
            raise _error(web.HTTPBadRequest, "'reply' must be true or false")
        if not self.batch_roots:
            raise _error(web.HTTPForbidden, "this server takes no paths ([api] batch_roots is empty): upload the files")
        inputs = []
        for given in paths:
            path = Path(given).resolve()  # symlinks and .. resolved before the check
            if not any(path.is_relative_to(root) for root in self.batch_roots):
                raise _error(web.HTTPForbidden, f"{given}: outside the folders a job may read ([api] batch_roots)")
            if not path.exists():
                raise _error(web.HTTPBadRequest, f"{given}: no such file or folder")
            inputs.append(str(path))
        return inputs, reply

    def _job(self, request: web.Request) -> dict:
        job_id = request.match_info["job_id"]
        job = self.jobs.get(job_id) if JOB_ID.fullmatch(job_id) else None
        if job is None:
            raise _error(web.HTTPNotFound, f"no job {job_id}")
        return job

    async def list_jobs(self, request: web.Request) -> web.Response:
        views = await asyncio.to_thread(lambda: [self.jobs.view(job) for job in self.jobs.all()])
        return web.json_response(views)

    async def get_job(self, request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(self.jobs.view, self._job(request)))

    async def delete_job(self, request: web.Request) -> web.Response:
        job = self._job(request)
        outcome = await asyncio.to_thread(self.jobs.delete, job["job_id"])
        if outcome == "running":
            raise _error(web.HTTPConflict, f"job {job['job_id']} is running: delete it once it has finished")
        if outcome == "missing":  # deleted by another request since _job found it
            raise _error(web.HTTPNotFound, f"no job {job['job_id']}")
        return web.json_response({"job_id": job["job_id"], "deleted": True})

    async def job_results(self, request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(self.jobs.results, self._job(request)))

    def _call_folder(self, request: web.Request) -> Path:
        """The folder of a call of the job that finished well (its transcript in it); 404 for any other."""
        job = self._job(request)
        call = request.match_info["call"]
        result = next((r for r in self.jobs.results(job) if r.get("call") == call), None)
        if result is None:
            raise _error(web.HTTPNotFound, f"no finished call {call} in job {job['job_id']}")
        if result.get("status") != "ok":
            raise _error(web.HTTPNotFound, f"call {call} of job {job['job_id']} failed: {result.get('error')}")
        job_folder = self.jobs.folder(job["job_id"])
        folder = job_folder / call
        # A call is one folder of the job's: never the job's own files nor, named "..", anything above them.
        if call in JOB_FILES or folder.resolve().parent != job_folder.resolve() or not folder.is_dir():
            raise _error(web.HTTPNotFound, f"no transcript of call {call} in job {job['job_id']}")
        return folder

    async def job_call(self, request: web.Request) -> web.Response:
        folder = await asyncio.to_thread(self._call_folder, request)
        body = await asyncio.to_thread((folder / "transcript.json").read_bytes)
        return web.Response(body=body, content_type="application/json")

    async def delete_job_call(self, request: web.Request) -> web.Response:
        job = self._job(request)
        call = request.match_info["call"]
        if call in JOB_FILES:  # purge_call removes <job>/<call>: never a job's own files
            raise _error(web.HTTPNotFound, f"no call {call} in job {job['job_id']}")
        deleted = await asyncio.to_thread(self.jobs.purge_call, job["job_id"], call)
        if deleted is None:
            raise _error(
                web.HTTPConflict, f"job {job['job_id']} is {job['status']}: purge its calls once it has finished"
            )
        if not deleted:
            raise _error(web.HTTPNotFound, f"no call {call} in job {job['job_id']}: nothing of it was found")
        return web.json_response({"call_id": call, "deleted": [str(path) for path in deleted]})

    async def job_reply(self, request: web.Request) -> web.StreamResponse:
        folder = await asyncio.to_thread(self._call_folder, request)
        name = request.match_info["name"]
        if not REPLY_NAME.fullmatch(name) or not (folder / name).is_file():
            raise _error(web.HTTPNotFound, f"no reply {name} in call {request.match_info['call']}")
        return web.FileResponse(folder / name, headers={"Content-Type": "audio/wav"})


def _last_change(folder: Path) -> float:
    """When anything in ``folder`` (itself or a file under it) last changed."""
    return max(path.stat().st_mtime for path in (folder, *folder.rglob("*")))


def _boolean(text: str, field: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise _error(web.HTTPBadRequest, f"'{field}' must be true or false, not '{text}'")


def _upload_name(filename: str, uploads: Path, taken: list[Path]) -> str:
    """A safe name in ``uploads`` for an uploaded file: no folders (a client's path parts are dropped), no odd
    characters, not hidden, unique; an audio file's suffix, or a 400 naming the file."""
    stem, dot, suffix = filename.replace("\\", "/").rsplit("/", 1)[-1].rpartition(".")
    stem = record_name(stem).lstrip(".")
    name = f"{stem}.{suffix}"
    if not filename or f".{suffix.lower()}" not in AUDIO_SUFFIXES or not dot or not stem:
        raise _error(
            web.HTTPBadRequest,
            f"{filename or 'a file part without a file name'}: not a recorded call "
            f"(one of {', '.join(sorted(AUDIO_SUFFIXES))})",
        )
    unique, number = name, 1
    while uploads / unique in taken:
        number += 1
        unique = f"{stem}-{number}.{suffix}"
    return unique
