"""Twilio Media Streams: the JSON text messages of a two-way `<Connect><Stream>` WebSocket.

Twilio sends connected, start, media (base64 mu-law at 8 kHz), dtmf, mark (echoed once the audio queued before
it has played) and stop; the agent sends media, mark, and clear (which drops the audio still queued: barge-in).
"""

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from voiceagent.errors import VoiceAgentError


class MediaStreamError(VoiceAgentError):
    """A WebSocket message that is not a Media Streams message."""


@dataclass(frozen=True)
class Connected:
    protocol: str = "Call"
    version: str = "1.0.0"


@dataclass(frozen=True)
class Start:
    stream_sid: str
    call_sid: str
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000
    channels: int = 1
    custom_parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Media:
    payload: bytes  # mu-law bytes
    track: str = "inbound"
    chunk: int = 0
    timestamp: int = 0  # milliseconds since the stream started


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class Mark:
    name: str


@dataclass(frozen=True)
class Stop:
    pass


Message = Connected | Start | Media | Dtmf | Mark | Stop


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MediaStreamError(f"{where} message without a valid {key!r}")
    return value


def _number(obj: Any, key: str, where: str) -> int:
    text = str(_get(obj, key, (int, str), where))  # Twilio sends chunk and timestamp as strings of digits
    if not (text.isascii() and text.isdigit() and len(text) < 20):
        raise MediaStreamError(f"{where} message with {key} {text[:20]!r}, not a count")
    return int(text)


def parse(text: str | bytes) -> Message:
    """One message from Twilio; MediaStreamError for invalid JSON, an unknown event, or a missing field."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise MediaStreamError("message is not JSON") from None
    event = _get(data, "event", str, "a")
    if event == "connected":
        protocol, version = data.get("protocol"), data.get("version")  # some peers leave them out
        return Connected(protocol if isinstance(protocol, str) else "Call", version if isinstance(version, str) else "")
    if event == "start":
        start = _get(data, "start", dict, event)
        media_format = _get(start, "mediaFormat", dict, event)
        parameters = start.get("customParameters", {})
        if not isinstance(parameters, dict):
            raise MediaStreamError("start message with customParameters that are not an object")
        return Start(
            stream_sid=_get(start, "streamSid", str, event),
            call_sid=_get(start, "callSid", str, event),
            encoding=_get(media_format, "encoding", str, event),
            sample_rate=_get(media_format, "sampleRate", int, event),
            channels=_get(media_format, "channels", int, event),
            custom_parameters={str(key): str(value) for key, value in parameters.items()},
        )
    if event == "media":
        media = _get(data, "media", dict, event)
        try:
            payload = base64.b64decode(_get(media, "payload", str, event), validate=True)
        except ValueError:  # binascii.Error, or characters outside ASCII
            raise MediaStreamError("media message with a payload that is not base64") from None
        track = _get(media, "track", str, event)
        return Media(payload, track, _number(media, "chunk", event), _number(media, "timestamp", event))
    if event == "dtmf":
        return Dtmf(_get(_get(data, "dtmf", dict, event), "digit", str, event))
    if event == "mark":
        return Mark(_get(_get(data, "mark", dict, event), "name", str, event))
    if event == "stop":
        return Stop()
    raise MediaStreamError(f"unknown Media Streams event {event[:40]!r}")


def encode(message: Message, stream_sid: str = "") -> str:
    """The message as Twilio sends it (what a fake Twilio peer in a test needs)."""
    data: dict[str, Any]
    match message:
        case Connected():
            return json.dumps({"event": "connected", "protocol": message.protocol, "version": message.version})
        case Start():
            start = {
                "streamSid": message.stream_sid,
                "callSid": message.call_sid,
                "mediaFormat": {
                    "encoding": message.encoding,
                    "sampleRate": message.sample_rate,
                    "channels": message.channels,
                },
                "customParameters": message.custom_parameters,
            }
            data = {"event": "start", "start": start}
            stream_sid = stream_sid or message.stream_sid
        case Media():
            media = {
                "track": message.track,
                "chunk": str(message.chunk),
                "timestamp": str(message.timestamp),
                "payload": base64.b64encode(message.payload).decode(),
            }
            data = {"event": "media", "media": media}
        case Dtmf():
            data = {"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": message.digit}}
        case Mark():
            data = {"event": "mark", "mark": {"name": message.name}}
        case Stop():
            data = {"event": "stop"}
    return json.dumps({**data, "streamSid": stream_sid})


def media_message(stream_sid: str, mulaw: bytes) -> str:
    """Audio for Twilio to play to the caller: mu-law at 8 kHz."""
    payload = base64.b64encode(mulaw).decode()
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def mark_message(stream_sid: str, name: str) -> str:
    """A mark Twilio echoes back once the audio sent before it has played."""
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    """Drops the audio Twilio still has queued (barge-in)."""
    return json.dumps({"event": "clear", "streamSid": stream_sid})
