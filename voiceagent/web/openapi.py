"""The OpenAPI 3.1 document of the HTTP API (voiceagent/web/api.py), served at ``GET /api/openapi.json``."""

from __future__ import annotations

from voiceagent import __version__


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    """The error responses of a route, each ``{"error": "..."}``; every route can answer 401 and 403."""
    reasons = {
        400: "Bad input: the message says what and, for an upload, which file",
        401: "The API has a token and the request did not carry it (WWW-Authenticate: Bearer)",
        403: (
            "A request from another site's page (an Origin whose host:port is not the Host), a Host that is not "
            "127.0.0.1, localhost or [::1] while the API has no token, or (a job) a path outside [api] batch_roots"
        ),
        404: "No such job, call or file",
        409: "The call is in progress (or still writing its record and audio), or the job is queued or running",
        413: "The upload is larger than [api] max_upload_mb",
        415: "The body is neither multipart/form-data nor application/json",
        429: "[api] max_jobs jobs are queued or running already",
    }
    return {str(status): _json(_ref("Error"), reasons[status]) for status in sorted({401, 403, *statuses})}


def _path_parameter(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


JOB_ID = _path_parameter("job_id", "The job's id (32 hex digits), as POST /api/jobs gave it")
CALL_ID = _path_parameter("call_id", "A live call's id (as GET /api/calls lists it), never a job's call")
JOB_CALL = _path_parameter("call", "The call's name in the job: its file name without the suffix, as results name it")
WAV = {"description": "16-bit PCM WAV (Range requests answered with 206)", "content": {"audio/wav": {}}}
NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_NUMBER = {"type": ["number", "null"]}

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "What went wrong, in one line"}},
    },
    "Job": {
        "type": "object",
        "required": ["job_id", "status", "reply", "inputs", "total", "done", "failed", "progress", "created_at"],
        "properties": {
            "job_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "status": {"enum": ["queued", "running", "done", "failed"]},
            "reply": {"type": "boolean", "description": "Whether the agent replies to each caller turn"},
            "inputs": {"type": "array", "items": {"type": "string"}, "description": "The files and folders read"},
            "total": {"type": "integer", "minimum": 0, "description": "Calls in the job"},
            "done": {"type": "integer", "minimum": 0, "description": "Calls finished so far, failed ones included"},
            "failed": {"type": "integer", "minimum": 0, "description": "Calls that could not be processed"},
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {**NULLABLE_STRING, "format": "date-time"},
            "finished_at": {**NULLABLE_STRING, "format": "date-time"},
            "error": {**NULLABLE_STRING, "description": "Why a failed job failed (a stage that did not load...)"},
        },
    },
    "PathsJob": {
        "type": "object",
        "required": ["paths"],
        "additionalProperties": False,
        "properties": {
            "paths": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "minLength": 1},
                "description": "Files and folders on the server, under [api] batch_roots (folders are searched)",
            },
            "reply": {"type": "boolean", "default": True},
        },
    },
    "UploadJob": {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "contentMediaType": "application/octet-stream"},
                "description": "Recorded calls: wav, flac, mp3, ogg, opus, m4a, or headerless .ulaw/.alaw",
            },
            "reply": {"type": "string", "enum": ["true", "false"], "default": "true"},
        },
    },
    "BatchResult": {
        "type": "object",
        "description": "One line of results.jsonl, as `voiceagent batch` writes it",
        "required": ["call", "file", "status"],
        "properties": {
            "call": {"type": "string"},
            "file": {"type": "string"},
            "status": {"enum": ["ok", "error"]},
            "error": {"type": "string"},
            "duration_s": {"type": "number"},
            "turns": {"type": "integer"},
            "replies": {"type": "integer"},
        },
    },
    "Transcript": {
        "type": "object",
        "description": "A call's transcript.json, as `voiceagent batch` writes it",
        "required": ["call", "file", "duration_s", "turns"],
        "properties": {
            "call": {"type": "string"},
            "file": {"type": "string"},
            "duration_s": {"type": "number"},
            "turns": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["speaker", "start", "end", "text"],
                    "properties": {
                        "speaker": {"enum": ["caller", "agent"]},
                        "start": {"type": "number"},
                        "end": {"type": "number"},
                        "text": {"type": "string"},
                    },
                },
            },
            "replies": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["turn", "caller", "reply", "audio"],
                    "properties": {
                        "turn": {"type": "integer"},
                        "caller": {"type": "string"},
                        "reply": {"type": "string"},
                        "audio": {"type": "string", "description": "The reply's WAV: .../replies/{audio}"},
                        "actions": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
        },
    },
    "CallSummary": {
        "type": "object",
        "required": ["call_id", "transport", "started_at", "end_reason", "active", "caller_turns", "actions"],
        "properties": {
            "call_id": {"type": "string"},
            "transport": {"type": "string", "description": "sip, audiosocket, twilio, softphone, local..."},
            "started_at": {**NULLABLE_STRING, "format": "date-time"},
            "end_reason": {"type": "string", "description": "Empty while the call is in progress"},
            "active": {"type": "boolean"},
            "caller_turns": {"type": "integer", "minimum": 0},
            "actions": {"type": "array", "items": {"type": ["string", "null"]}, "description": "Action types"},
            "voice_to_voice_ms": {**NULLABLE_NUMBER, "description": "The median over the call's replies"},
            "sentiment": {**NULLABLE_NUMBER, "description": "The caller's mean sentiment, -1 (angry) to 1"},
            "has_audio": {"type": "boolean"},
        },
    },
    "CallRecord": {
        "type": "object",
        "description": "The whole call record (redacted): its turns with latencies, slots and actions",
        "required": ["call_id", "active"],
        "properties": {
            "call_id": {"type": "string"},
            "transport": {"type": "string"},
            "started_at": {"type": "string"},
            "end_reason": {"type": "string"},
            "turns": {"type": "array", "items": {"type": "object"}},
            "slots": {"type": "object"},
            "actions": {"type": "array", "items": {"type": "object"}},
            "active": {"type": "boolean"},
            "has_audio": {"type": "boolean"},
        },
    },
    "Deleted": {
        "type": "object",
        "required": ["deleted"],
        "properties": {
            "job_id": {"type": "string"},
            "call_id": {"type": "string"},
            "deleted": {
                "type": ["boolean", "array"],
                "items": {"type": "string"},
                "description": "true for a job; for a call, every file removed",
            },
        },
    },
}

PATHS = {
    "/api/softphone": {
        "get": {
            "operationId": "softphone",
            "summary": "A call from the browser: a WebSocket (GET with Upgrade: websocket, answered 101)",
            "description": (
                'One WebSocket is one call. The client sends {"type": "start", "sample_rate": R}, then the '
                'microphone as binary messages of 16-bit little-endian mono PCM at R Hz; {"type": "dtmf", '
                '"digit": "5"} for a key, {"type": "hangup"} (or closing the socket) to hang up. The server '
                'answers {"type": "started", "call_id"} (or {"type": "refused", "reason"} at the call '
                "limit, and closes), then the agent's voice as binary 20 ms frames of the same PCM, and the call's "
                'events as {"type": "event", "kind", "data"} (partial, caller, agent, interrupted, resumed, '
                "latency, ended; their text redacted). The token, if any, goes in ?token=: a browser cannot set "
                "headers on a WebSocket."
            ),
            "responses": {
                "101": {"description": "Switching Protocols: the call's WebSocket"},
                **_errors(400),
            },
        }
    },
    "/api/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "responses": {"200": _json({"type": "object"}, "The OpenAPI document"), **_errors()},
        }
    },
    "/api/calls": {
        "get": {
            "operationId": "listCalls",
            "summary": "Calls in progress and finished calls, newest first",
            "responses": {
                "200": _json({"type": "array", "items": _ref("CallSummary")}, "One summary per call"),
                **_errors(),
            },
        }
    },
    "/api/calls/{call_id}": {
        "parameters": [CALL_ID],
        "get": {
            "operationId": "getCall",
            "summary": "A call's whole record (a call in progress as it is now, redacted)",
            "responses": {"200": _json(_ref("CallRecord"), "The record"), **_errors(404)},
        },
        "delete": {
            "operationId": "deleteCall",
            "summary": "Purge one live call's data: its record and its audio",
            "description": (
                "Removes <records>/<call id>.json and .wav, nothing in any job: a job's calls are named after their "
                "files, not after live calls (DELETE /api/jobs/{job_id}/calls/{call} removes one). 409 while the "
                "call is in progress, and after its hang-up until its record and audio are written."
            ),
            "responses": {"200": _json(_ref("Deleted"), "What was removed"), **_errors(404, 409)},
        },
    },
    "/api/calls/{call_id}/audio": {
        "parameters": [CALL_ID],
        "get": {
            "operationId": "getCallAudio",
            "summary": "The call's audio: stereo, caller left, agent right (409 until the call has finished)",
            "parameters": [
                {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"}},
            ],
            "responses": {"200": WAV, "206": WAV, **_errors(404, 409)},
        },
    },
    "/api/jobs": {
        "post": {
            "operationId": "submitJob",
            "summary": "Submit a batch of recorded calls: uploaded files, or paths on the server",
            "description": (
                "Each upload is checked as audio before the job is accepted; a rejected job leaves nothing on the "
                "server. The job runs after those before it, one job at a time."
            ),
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {"schema": _ref("UploadJob")},
                    "application/json": {"schema": _ref("PathsJob")},
                },
            },
            "responses": {
                "202": {
                    **_json(_ref("Job"), "Queued"),
                    "headers": {"Location": {"description": "The job's URL", "schema": {"type": "string"}}},
                },
                **_errors(400, 403, 413, 415, 429),
            },
        },
        "get": {
            "operationId": "listJobs",
            "summary": "Every job, newest first",
            "responses": {"200": _json({"type": "array", "items": _ref("Job")}, "The jobs"), **_errors()},
        },
    },
    "/api/jobs/{job_id}": {
        "parameters": [JOB_ID],
        "get": {
            "operationId": "getJob",
            "summary": "A job's status and progress",
            "responses": {"200": _json(_ref("Job"), "The job"), **_errors(404)},
        },
        "delete": {
            "operationId": "deleteJob",
            "summary": "Delete a job that is not running, with all its files (a queued one never runs)",
            "responses": {"200": _json(_ref("Deleted"), "Deleted"), **_errors(404, 409)},
        },
    },
    "/api/jobs/{job_id}/results": {
        "parameters": [JOB_ID],
        "get": {
            "operationId": "getJobResults",
            "summary": "The results so far: the lines of results.jsonl, as `voiceagent batch` writes them",
            "responses": {
                "200": _json({"type": "array", "items": _ref("BatchResult")}, "One result per finished call"),
                **_errors(404),
            },
        },
    },
    "/api/jobs/{job_id}/calls/{call}": {
        "parameters": [JOB_ID, JOB_CALL],
        "get": {
            "operationId": "getJobCall",
            "summary": "A finished call's transcript.json",
            "responses": {"200": _json(_ref("Transcript"), "The transcript"), **_errors(404)},
        },
        "delete": {
            "operationId": "deleteJobCall",
            "summary": "Purge one call of a finished job: its folder, its uploaded file and its line of the results",
            "description": "409 while the job is queued or running: its worker is writing those files.",
            "responses": {"200": _json(_ref("Deleted"), "What was removed"), **_errors(404, 409)},
        },
    },
    "/api/jobs/{job_id}/calls/{call}/replies/{name}": {
        "parameters": [JOB_ID, JOB_CALL, _path_parameter("name", "reply_NN.wav, as the transcript names it")],
        "get": {
            "operationId": "getJobReply",
            "summary": "The agent's spoken reply to one caller turn",
            "responses": {"200": WAV, "206": WAV, **_errors(404)},
        },
    },
}


def document() -> dict:
    """The OpenAPI 3.1 document of every /api/ route."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "voiceagent API",
            "version": __version__,
            "description": (
                "Batch jobs of recorded calls and the call records of `voiceagent serve`. With `[api] token` set, "
                "every path under /api/ needs `Authorization: Bearer <token>` (or `?token=<token>`, for a "
                "browser's WebSocket or <audio>); without one the API answers only requests whose Host is "
                "127.0.0.1, localhost or [::1] (any port; 403 otherwise: set [api] token to serve other hosts), "
                "which also keeps DNS rebinding out. A request with an `Origin` header whose host:port is not the "
                "request's Host (another site's page) is refused with 403 whatever the token; clients that send "
                'no Origin, as curl, are not affected. Every error is JSON: {"error": "..."}.'
            ),
        },
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "token": {"type": "apiKey", "in": "query", "name": "token"},
            },
        },
        "security": [{"bearer": []}, {"token": []}],
    }
