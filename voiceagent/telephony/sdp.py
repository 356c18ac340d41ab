"""SDP offer/answer for one audio stream (RFC 4566, RFC 3264): read a caller's offer, write the agent's answer.

The agent speaks G.711 (PCMU, PCMA) and RFC 4733 telephone-event. Every other stream of an offer is declined
(port 0), and an offer with nothing the agent can speak raises NoCommonCodec, which a server answers with 488.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from voiceagent.errors import VoiceAgentError

# RFC 3551 static payload types an offer may list without an rtpmap.
STATIC_PAYLOAD_TYPES = {0: "PCMU", 3: "GSM", 4: "G723", 8: "PCMA", 9: "G722", 18: "G729"}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_ANSWER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}


class SdpError(VoiceAgentError):
    """An SDP body that cannot be read."""


class NoCommonCodec(SdpError):
    """An offer with no audio stream the agent can speak (answer 488 Not Acceptable Here)."""


@dataclass(frozen=True)
class Codec:
    """One payload type of a stream, as its rtpmap (or the static table) names it."""

    payload_type: int
    name: str
    clock_rate: int = 8000
    channels: int = 1


@dataclass
class Media:
    """One m= line with what applies to it, session-level defaults resolved."""

    kind: str
    port: int
    protocol: str
    formats: list[str]
    address: str | None = None
    codecs: list[Codec] = field(default_factory=list)  # the RTP payload types we can name, in offer order
    ptime: int | None = None
    direction: str = "sendrecv"

    @property
    def telephone_event(self) -> int | None:
        """The payload type of RFC 4733 events at 8 kHz, when offered."""
        for codec in self.codecs:
            if codec.name.lower() == "telephone-event" and codec.clock_rate == 8000:
                return codec.payload_type
        return None

    @property
    def on_hold(self) -> bool:
        """The peer holds the call: it stopped receiving, or sent the old (RFC 2543) null address."""
        return self.direction in ("sendonly", "inactive") or self.address in ("0.0.0.0", "::")


@dataclass
class SessionDescription:
    """A parsed SDP body: its origin line and its streams."""

    origin: str
    media: list[Media]

    @property
    def audio(self) -> Media | None:
        """The stream the agent answers: the first audio one on plain RTP/AVP that is not disabled."""
        for media in self.media:
            if media.kind == "audio" and media.protocol == "RTP/AVP" and media.port != 0:
                return media
        return None


def parse(data: bytes) -> SessionDescription:
    """An SDP body (an offer or an answer); SdpError says what is wrong with one that cannot be read."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("SDP is not UTF-8") from None
    lines = [line.rstrip(" \t\r") for line in text.split("\n")]
    lines = [line for line in lines if line]
    if not lines or lines[0] != "v=0":
        raise SdpError("SDP does not start with v=0")
    origin, session = "", Media("session", 0, "", [])
    media: list[Media] = []
    rtpmaps: list[dict[int, Codec]] = []
    for line in lines[1:]:
        if len(line) < 2 or line[1] != "=" or not "a" <= line[0] <= "z":
            raise SdpError(f"bad SDP line {line[:60]!r}")
        letter, value = line[0], line[2:]
        current = media[-1] if media else session
        if letter == "o":
            origin = value
        elif letter == "m":
            media.append(_media_line(value))
            rtpmaps.append({})
        elif letter == "c":
            current.address = _connection_address(value)
        elif letter == "a":
            name, _, arg = value.partition(":")
            if name in DIRECTIONS:
                current.direction = name
            elif name == "ptime":
                if not re.fullmatch("[0-9]{1,4}", arg):
                    raise SdpError(f"bad ptime {arg[:20]!r}")
                current.ptime = int(arg)
            elif name == "rtpmap" and media:
                codec = _rtpmap(arg)
                rtpmaps[-1][codec.payload_type] = codec
    for m, rtpmap in zip(media, rtpmaps):
        m.address = m.address or session.address
        m.ptime = m.ptime or session.ptime
        m.direction = m.direction or session.direction
        if m.port != 0 and m.address is None:
            raise SdpError(f"no connection address for m={m.kind}")
        if m.protocol.startswith("RTP/"):
            m.codecs = _codecs(m, rtpmap)
    return SessionDescription(origin, media)


def _media_line(value: str) -> Media:
    parts = value.split()
    if len(parts) < 4 or not re.fullmatch("[0-9]{1,5}(/[0-9]{1,5})?", parts[1]):
        raise SdpError(f"bad m= line {value[:60]!r}")
    port = int(parts[1].split("/")[0])
    if port > 65535:
        raise SdpError(f"bad port {port} in m= line")
    return Media(parts[0], port, parts[2], parts[3:], direction="")


def _connection_address(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6") or not parts[2].split("/")[0]:
        raise SdpError(f"bad c= line {value[:60]!r}")
    return parts[2].split("/")[0]


def _rtpmap(arg: str) -> Codec:
    match = re.fullmatch(r"([0-9]{1,3})[ \t]+([^/\s]+)/([0-9]{1,6})(?:/([0-9]{1,2}))?", arg)
    if match is None or int(match[1]) > 127:
        raise SdpError(f"bad rtpmap {arg[:60]!r}")
    return Codec(int(match[1]), match[2], int(match[3]), int(match[4] or 1))


def _codecs(media: Media, rtpmap: dict[int, Codec]) -> list[Codec]:
    codecs = []
    for fmt in media.formats:
        if not re.fullmatch("[0-9]{1,3}", fmt) or int(fmt) > 127:
            raise SdpError(f"bad RTP payload type {fmt[:20]!r}")
        pt = int(fmt)
        if pt in rtpmap:
            codecs.append(rtpmap[pt])
        elif pt in STATIC_PAYLOAD_TYPES:
            codecs.append(Codec(pt, STATIC_PAYLOAD_TYPES[pt]))
    return codecs


def answer(
    offer: SessionDescription,
    local_ip: str,
    local_port: int,
    session_id: int,
    preferred: Sequence[str] = ("PCMU", "PCMA"),
    version: int | None = None,
) -> tuple[bytes, Codec]:
    """The agent's answer to `offer` and the codec it chose: the first of `preferred` the caller offers (at 8 kHz),
    with the caller's telephone-event payload type when it offers one; the other streams declined.

    The direction mirrors the offer's (sendonly is answered recvonly: hold). `version` (default: session_id) must
    grow when a later answer in the same session (a re-INVITE) changes.
    """
    audio = offer.audio
    if audio is None:
        raise NoCommonCodec("the offer has no audio stream on RTP/AVP")
    chosen = None
    for name in preferred:
        for codec in audio.codecs:
            if codec.name.upper() == name.upper() and codec.clock_rate == 8000 and codec.channels == 1:
                chosen = Codec(codec.payload_type, name)
                break
        if chosen:
            break
    if chosen is None:
        offered = ", ".join(f"{c.name}/{c.clock_rate}" for c in audio.codecs) or "no known codec"
        raise NoCommonCodec(f"none of {', '.join(preferred)} among the offered {offered}")
    event = audio.telephone_event
    formats = f"{chosen.payload_type}" + (f" {event}" if event is not None else "")
    family = "IP6" if ":" in local_ip else "IP4"
    lines = [
        "v=0",
        f"o=voiceagent {session_id} {session_id if version is None else version} IN {family} {local_ip}",
        "s=voiceagent",
        f"c=IN {family} {local_ip}",
        "t=0 0",
    ]
    for media in offer.media:
        if media is not audio:
            lines.append(f"m={media.kind} 0 {media.protocol} {media.formats[0]}")  # declined (RFC 3264 6)
            continue
        lines += [f"m=audio {local_port} RTP/AVP {formats}", f"a=rtpmap:{chosen.payload_type} {chosen.name}/8000"]
        if event is not None:
            lines += [f"a=rtpmap:{event} telephone-event/8000", f"a=fmtp:{event} 0-15"]
        lines += ["a=ptime:20", f"a={_ANSWER_DIRECTION[audio.direction]}"]
    return ("\r\n".join(lines) + "\r\n").encode(), chosen
