"""SIP messages (RFC 3261) as they travel in UDP datagrams: parse, serialize, and what an answering agent needs.

Small on purpose: requests and responses, the headers of a transaction and of a dialog, and strict checks, so a
malformed datagram is rejected with a reason instead of failing somewhere inside the server. Sockets, timers and
retransmissions belong to the transport.
"""

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from voiceagent.errors import VoiceAgentError

MAX_MESSAGE = 64 * 1024  # no UDP datagram is larger
MAX_CSEQ = 2**31 - 1  # RFC 3261 8.1.1.5
MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")
# RFC 3261 7.3.3 and the extensions an agent meets (REFER: r, b; events: o, u).
COMPACT_FORMS = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "r": "Refer-To",
    "b": "Referred-By",
    "o": "Event",
    "u": "Allow-Events",
}

_TOKEN = r"[A-Za-z0-9.!%*_+`'~-]+"
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # tab is the one control character a header may hold


class SipParseError(VoiceAgentError):
    """A datagram that is not a well-formed SIP message; the message says what is wrong with it."""


def _key(name: str) -> str:
    lower = name.lower()
    return COMPACT_FORMS.get(lower, lower).lower()


def _show(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:80] + "...")


@dataclass
class SipMessage:
    """One SIP request (method and uri set) or response (status and reason set).

    `fields` keeps the header lines in order, with their names as written (compact forms included), so a
    message serializes back to the bytes it came from; `header` and `headers` look them up by any spelling.
    """

    method: str = ""
    uri: str = ""
    status: int = 0
    reason: str = ""
    fields: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return bool(self.method)

    def header(self, name: str) -> str | None:
        """The first value of a header (any case, compact or full name), or None."""
        values = self.headers(name)
        return values[0] if values else None

    def headers(self, name: str) -> list[str]:
        """Every value of a header, one per header line, in order (split_list splits a comma-separated one)."""
        key = _key(name)
        return [value for field_name, value in self.fields if _key(field_name) == key]


def parse(data: bytes) -> SipMessage:
    """One SIP message from a datagram; SipParseError says why a datagram is not one."""
    if len(data) > MAX_MESSAGE:
        raise SipParseError(f"message of {len(data)} bytes is over the {MAX_MESSAGE}-byte limit")
    data = data.lstrip(b"\r\n")  # RFC 3261 7.5: CRLFs before the start line are ignored (keep-alives)
    if not data:
        raise SipParseError("empty message")
    end = _HEAD_END.search(data)
    if end is None:
        raise SipParseError("no blank line after the headers")
    try:
        head = data[: end.start()].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError(f"headers are not UTF-8 (byte {exc.start})") from None
    lines = head.replace("\r\n", "\n").split("\n")
    for line in lines:
        if _CONTROL.search(line):
            raise SipParseError(f"control character in {_show(line)}")
    msg = _start_line(lines[0])
    msg.fields = _fields(lines[1:])
    for name in MANDATORY:
        if not msg.header(name):
            raise SipParseError(f"no {name} header")
    _, method = cseq(msg)
    if msg.is_request and method != msg.method:
        raise SipParseError(f"CSeq method {method} does not match the request's {msg.method}")
    body = data[end.end() :]
    length = msg.header("Content-Length")
    if length is not None:
        if not re.fullmatch("[0-9]{1,9}", length):
            raise SipParseError(f"bad Content-Length {_show(length)}")
        if int(length) > len(body):
            raise SipParseError(f"Content-Length {length} but only {len(body)} bytes of body")
        body = body[: int(length)]  # RFC 3261 18.3: bytes past it in a datagram are discarded
    msg.body = body
    return msg


def _start_line(line: str) -> SipMessage:
    parts = line.split(" ", 2)
    if parts[0].upper() == "SIP/2.0":
        if len(parts) < 2 or not re.fullmatch("[1-6][0-9][0-9]", parts[1]):
            raise SipParseError(f"bad status line {_show(line)}")
        return SipMessage(status=int(parts[1]), reason=parts[2] if len(parts) == 3 else "")
    if len(parts) != 3 or not re.fullmatch(_TOKEN, parts[0]) or not parts[1] or parts[2].upper() != "SIP/2.0":
        raise SipParseError(f"bad request line {_show(line)}")
    return SipMessage(method=parts[0], uri=parts[1])


def _fields(lines: list[str]) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):  # folded onto the previous header (RFC 3261 7.3.1)
            if not fields:
                raise SipParseError("continuation line before any header")
            name, value = fields[-1]
            fields[-1] = (name, (value + " " + line.strip(" \t")).strip(" "))
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not re.fullmatch(_TOKEN, name):
            raise SipParseError(f"bad header line {_show(line)}")
        fields.append((name, value.strip(" \t")))
    return fields


def serialize(msg: SipMessage) -> bytes:
    """The message as bytes, its Content-Length set to the body's length (added last when it has none)."""
    start = f"{msg.method} {msg.uri} SIP/2.0" if msg.is_request else f"SIP/2.0 {msg.status} {msg.reason}"
    lines = [start]
    has_length = False
    for name, value in msg.fields:
        if _key(name) == "content-length":
            if has_length:
                continue
            value, has_length = str(len(msg.body)), True
        lines.append(f"{name}: {value}")
    if not has_length:
        lines.append(f"Content-Length: {len(msg.body)}")
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + msg.body


def cseq(msg: SipMessage) -> tuple[int, str]:
    """The CSeq header as (number, method)."""
    value = msg.header("CSeq") or ""
    match = re.fullmatch(rf"([0-9]{{1,10}})[ \t]+({_TOKEN})", value)
    if match is None or int(match[1]) > MAX_CSEQ:
        raise SipParseError(f"bad CSeq {_show(value)}")
    return int(match[1]), match[2]


def _scan(value: str, stops: str) -> int:
    """The index of the first of `stops` outside quotes and <...>, or len(value)."""
    quoted = bracketed = escaped = False
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            escaped = ch == "\\"
            quoted = ch != '"'
        elif bracketed:
            bracketed = ch != ">"
        elif ch == '"':
            quoted = True
        elif ch == "<":
            bracketed = True
        elif ch in stops:
            return i
    return len(value)


def split_list(value: str) -> list[str]:
    """A comma-separated header value (Via, Route, Record-Route, Contact) as its elements."""
    parts = []
    while value:
        end = _scan(value, ",")
        parts.append(value[:end].strip())
        value = value[end + 1 :]
    return [part for part in parts if part]


def param(value: str, name: str) -> str | None:
    """A parameter of a header value's first element ('tag', 'branch', 'received'...); '' for a flag, else None.

    Parameters inside <...> belong to the URI, not the header, and are not looked at.
    """
    first = value[: _scan(value, ",")]
    for item in first[_scan(first, ";") + 1 :].split(";"):
        key, _, found = item.partition("=")
        if key.strip().lower() == name.lower():
            return found.strip()
    return None


def tag_of(value: str) -> str | None:
    """The tag of a From or To value: '"Bob" <sip:bob@h>;tag=9fx' -> '9fx'; None when it has none."""
    return param(value, "tag") or None


def uri_of(value: str) -> str:
    """The URI of a From, To, Contact or Route value: '"Bob" <sip:bob@h>;tag=1' -> 'sip:bob@h'."""
    first = value[: _scan(value, ",")].strip()
    display = re.match(r'"(?:[^"\\]|\\.)*"', first)  # a quoted display name may hold '<'
    rest = first[display.end() :] if display else first
    if "<" in rest:
        uri, closed, _ = rest.split("<", 1)[1].partition(">")
    else:
        uri, closed = first.split(";", 1)[0], "addr-spec"
    if not closed or not uri.strip():
        raise SipParseError(f"no URI in {_show(value)}")
    return uri.strip()


def new_tag() -> str:
    """A random From/To tag."""
    return secrets.token_hex(8)


def new_branch() -> str:
    """A random Via branch with the RFC 3261 magic cookie."""
    return "z9hG4bK" + secrets.token_hex(8)


def response_to(
    request: SipMessage,
    status: int,
    reason: str,
    to_tag: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> SipMessage:
    """A response to `request` (RFC 3261 8.2.6): its Via headers, From, To, Call-ID and CSeq copied.

    The To gets `to_tag` unless it carries a tag already (a request inside a dialog). Record-Route is copied too in
    1xx/2xx answers (12.1.1). A 2xx to an INVITE needs a Contact among extra_headers.
    """
    to = request.header("To") or ""
    if to_tag and tag_of(to) is None:
        to = f"{to};tag={to_tag}"
    fields = [("Via", via) for via in request.headers("Via")]
    fields += [
        ("From", request.header("From") or ""),
        ("To", to),
        ("Call-ID", request.header("Call-ID") or ""),
        ("CSeq", request.header("CSeq") or ""),
    ]
    if 100 < status < 300:
        fields += [("Record-Route", route) for route in request.headers("Record-Route")]
    fields += extra_headers
    if content_type:
        fields.append(("Content-Type", content_type))
    return SipMessage(status=status, reason=reason, fields=fields, body=body)


def _loose_router(route: str) -> bool:
    return any(p.split("=", 1)[0].strip().lower() == "lr" for p in uri_of(route).split(";")[1:])


@dataclass
class Dialog:
    """Our side of a SIP dialog (RFC 3261 12): what the requests we send inside it (BYE, REFER...) need."""

    call_id: str
    local_tag: str
    remote_tag: str  # "" when an old (RFC 2543) peer sent no From tag
    local_uri: str
    remote_uri: str
    remote_target: str  # the peer's Contact URI: where in-dialog requests go
    local_cseq: int = 0  # the CSeq of our last request; 0 before the first
    route_set: list[str] = field(default_factory=list)  # Record-Route entries, as written
    local_contact: str | None = None  # our URI, sent as Contact (REFER and re-INVITE need it)

    @classmethod
    def from_request(cls, request: SipMessage, local_tag: str, local_contact: str | None = None) -> "Dialog":
        """The dialog a UAS makes by answering `request` (an INVITE) with `local_tag` as its To tag (12.1.1)."""
        contact = request.header("Contact")
        if contact is None:
            raise SipParseError(f"{request.method} has no Contact header")
        return cls(
            call_id=request.header("Call-ID") or "",
            local_tag=local_tag,
            remote_tag=tag_of(request.header("From") or "") or "",
            local_uri=uri_of(request.header("To") or ""),
            remote_uri=uri_of(request.header("From") or ""),
            remote_target=uri_of(contact),
            route_set=[route for value in request.headers("Record-Route") for route in split_list(value)],
            local_contact=local_contact,
        )

    def request(
        self,
        method: str,
        via_host: str,
        via_port: int,
        extra_headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipMessage:
        """A new request in the dialog (BYE, REFER, INFO, re-INVITE; not ACK or CANCEL): next CSeq, new branch.

        Send it to the first route's address when there is a route set, else to the remote target.
        """
        self.local_cseq += 1
        uri, routes = self.remote_target, list(self.route_set)
        if routes and not _loose_router(routes[0]):  # a strict router takes the target's place (12.2.1.1)
            uri, routes = uri_of(routes[0]), [*routes[1:], f"<{self.remote_target}>"]
        host = f"[{via_host}]" if ":" in via_host and not via_host.startswith("[") else via_host
        remote_tag = f";tag={self.remote_tag}" if self.remote_tag else ""
        fields = [
            ("Via", f"SIP/2.0/UDP {host}:{via_port};branch={new_branch()}"),
            ("Max-Forwards", "70"),
            ("From", f"<{self.local_uri}>;tag={self.local_tag}"),
            ("To", f"<{self.remote_uri}>{remote_tag}"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.local_cseq} {method}"),
        ]
        fields += [("Route", route) for route in routes]
        if self.local_contact:
            fields.append(("Contact", f"<{self.local_contact}>"))
        fields += extra_headers
        if content_type:
            fields.append(("Content-Type", content_type))
        return SipMessage(method=method, uri=uri, fields=fields, body=body)
