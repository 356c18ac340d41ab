import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voiceagent.errors import VoiceAgentError
from voiceagent.telephony.sip import (
    MAX_MESSAGE,
    Dialog,
    SipMessage,
    SipParseError,
    cseq,
    param,
    parse,
    response_to,
    serialize,
    split_list,
    tag_of,
    uri_of,
)

FUZZ = settings(max_examples=200, deadline=None)


def message(head: str, body: bytes = b"") -> bytes:
    """A datagram from header lines written one a line (with {length} for the body's length), CRLF as on the wire."""
    lines = head.strip("\n").replace("{length}", str(len(body))).split("\n")
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


@st.composite
def mutations(draw, samples: list[bytes]) -> bytes:
    """A valid sample broken one to three ways: cut short, a bit flipped, bytes dropped or inserted."""
    data = bytearray(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        change = draw(st.sampled_from(["cut", "flip", "drop", "insert"]))
        if change == "cut":
            del data[at:]
        elif change == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif change == "drop":
            del data[at : at + draw(st.integers(1, 16))]
        elif change == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


# What SIPp's uac_rtpstream.xml sends (reference/sipp), its keywords filled in as SIPp does.
SIPP_SDP = message("""
v=0
o=sipp 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=ptime:20
a=sendrecv
""").removesuffix(b"\r\n")
SIPP_INVITE = message(
    """
INVITE sip:service@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-31337-1-0
From: sipp <sip:sipp@127.0.0.1:5061>;tag=31337SIPpTag091
To: <sip:service@127.0.0.1:5060>
Call-ID: 1-31337@127.0.0.1
CSeq: 1 INVITE
Contact: <sip:sipp@127.0.0.1:5061>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: {length}
""",
    SIPP_SDP,
)
SIPP_BYE = message("""
BYE sip:service@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-31337-1-5
From: sipp <sip:sipp@127.0.0.1:5061>;tag=31337SIPpTag091
To: <sip:service@127.0.0.1:5060>;tag=a6c85cf
Call-ID: 1-31337@127.0.0.1
CSeq: 2 BYE
Contact: <sip:sipp@127.0.0.1:5061>
Max-Forwards: 70
Content-Length: 0
""")
# What SIPp's uas_rtpstream.xml answers.
SIPP_RINGING = message("""
SIP/2.0 180 Ringing
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK2f1e0d;received=127.0.0.1
From: <sip:agent@127.0.0.1:5060>;tag=77aa
To: <sip:sipp@127.0.0.1:5061>;tag=4242SIPpTag011
Call-ID: c0ffee@127.0.0.1
CSeq: 1 INVITE
Contact: <sip:127.0.0.1:5061;transport=UDP>
Content-Length: 0
""")
# A softphone (Linphone-style) behind a Kamailio proxy: compact header names, two Via headers (one holding two
# entries), a Record-Route, display names with quotes.
SOFTPHONE_SDP = message("""
v=0
o=alice 2148 3370 IN IP4 192.168.1.20
s=Talk
c=IN IP4 192.168.1.20
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp-fb:* trr-int 1000
m=video 9078 RTP/AVP 96 97
a=rtpmap:96 VP8/90000
a=rtpmap:97 H264/90000
""").removesuffix(b"\r\n")
SOFTPHONE_INVITE = message(
    """
INVITE sip:support@10.0.0.5:5080 SIP/2.0
v: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK9d2c.7a1e0f42;rport
v: SIP/2.0/UDP 192.168.1.20:5060;rport=41920;branch=z9hG4bK.lFnE~7ZRx, SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bK.x
Record-Route: <sip:10.0.0.2;lr;ftag=Kq0JzE8>
f: "Alice, Sales" <sip:alice@example.com>;tag=Kq0JzE8
t: <sip:support@example.com>
i: Ws8bBfJqEe
CSeq: 20 INVITE
m: <sip:alice@192.168.1.20:5060;transport=udp>;+sip.instance="<urn:uuid:1b9c>"
Max-Forwards: 69
User-Agent: Linphone Desktop/5.2.6 (belle-sip/5.2.94)
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO, UPDATE
k: replaces, outbound, gruu
c: application/sdp
l: {length}
""",
    SOFTPHONE_SDP,
)
CANONICAL = [SIPP_INVITE, SIPP_BYE, SIPP_RINGING, SOFTPHONE_INVITE]


def test_sipp_invite():
    invite = parse(SIPP_INVITE)
    assert (invite.method, invite.uri, invite.is_request) == ("INVITE", "sip:service@127.0.0.1:5060", True)
    assert cseq(invite) == (1, "INVITE")
    assert tag_of(invite.header("from")) == "31337SIPpTag091"
    assert tag_of(invite.header("To")) is None
    assert uri_of(invite.header("Contact")) == "sip:sipp@127.0.0.1:5061"
    assert param(invite.header("Via"), "branch") == "z9hG4bK-31337-1-0"
    assert invite.body == SIPP_SDP


def test_response():
    ringing = parse(SIPP_RINGING)
    assert (ringing.status, ringing.reason, ringing.is_request) == (180, "Ringing", False)
    assert param(ringing.header("Via"), "received") == "127.0.0.1"


def test_compact_headers_and_lists():
    invite = parse(SOFTPHONE_INVITE)
    assert invite.header("Call-ID") == invite.header("i") == "Ws8bBfJqEe"
    assert invite.header("content-type") == "application/sdp"
    assert invite.header("Supported") == "replaces, outbound, gruu"
    assert len(invite.headers("Via")) == 2
    vias = [via for value in invite.headers("VIA") for via in split_list(value)]
    assert [param(via, "branch") for via in vias] == ["z9hG4bK9d2c.7a1e0f42", "z9hG4bK.lFnE~7ZRx", "z9hG4bK.x"]
    assert param(vias[0], "rport") == ""
    assert uri_of(invite.header("From")) == "sip:alice@example.com"  # the comma in the quoted name is no list
    assert tag_of(invite.header("f")) == "Kq0JzE8"
    assert uri_of(invite.header("m")) == "sip:alice@192.168.1.20:5060;transport=udp"
    assert invite.body == SOFTPHONE_SDP
    assert invite.header("P-Nothing") is None and invite.headers("P-Nothing") == []


@pytest.mark.parametrize("data", CANONICAL)
def test_round_trip_is_byte_exact(data):
    msg = parse(data)
    assert serialize(msg) == data
    assert parse(serialize(msg)) == msg


def test_serialize_sets_content_length():
    msg = parse(SIPP_BYE)
    msg.body = b"hello"
    assert b"\r\nContent-Length: 5\r\n" in serialize(msg)
    built = SipMessage(method="OPTIONS", uri="sip:a@b", fields=[("l", "99"), ("Content-Length", "7")])
    assert serialize(built).endswith(b"\r\nl: 0\r\n\r\n")  # the first one set, the duplicate dropped
    bare = SipMessage(status=200, reason="OK", fields=[("Call-ID", "x")], body=b"ab")
    assert serialize(bare) == b"SIP/2.0 200 OK\r\nCall-ID: x\r\nContent-Length: 2\r\n\r\nab"


def test_lenient_where_rfc_3261_says_so():
    folded = SIPP_BYE.replace(b"Max-Forwards: 70", b"Subject: a long\r\n  subject\r\n\tline\r\nMax-Forwards: 70")
    assert parse(folded).header("subject") == "a long subject line"
    assert parse(b"\r\n\r\n" + SIPP_BYE) == parse(SIPP_BYE)  # CRLFs before the start line
    assert parse(SIPP_BYE.replace(b"\r\n", b"\n")) == parse(SIPP_BYE)  # bare LF line ends
    assert parse(SIPP_BYE.replace(b"CSeq: 2", b"CSeq  :  2")).header("CSeq") == "2 BYE"
    assert parse(SIPP_BYE + b"trailing junk").body == b""  # Content-Length: 0 rules (18.3)
    no_length = SIPP_BYE.replace(b"Content-Length: 0\r\n", b"")
    assert parse(no_length + b"body").body == b"body"  # without Content-Length the datagram's end ends it


def _without(data: bytes, name: bytes) -> bytes:
    return b"\r\n".join(line for line in data.split(b"\r\n") if not line.startswith(name + b":"))


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"\r\n\r\n", "empty"),  # a keep-alive is not a message
        (SIPP_BYE.replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1), "request line"),
        (SIPP_BYE.replace(b"BYE sip:", b"BYE  sip:", 1), "request line"),
        (SIPP_BYE.replace(b"BYE sip:", b"B(E sip:", 1), "request line"),
        (SIPP_RINGING.replace(b"180", b"1800", 1), "status line"),
        (SIPP_RINGING.replace(b"180", b"099", 1), "status line"),
        (SIPP_RINGING.replace(b"SIP/2.0 180 Ringing", b"SIP/2.0", 1), "status line"),
        (_without(SIPP_BYE, b"Via"), "no Via"),
        (_without(SIPP_BYE, b"From"), "no From"),
        (_without(SIPP_BYE, b"To"), "no To"),
        (_without(SIPP_BYE, b"Call-ID"), "no Call-ID"),
        (_without(SIPP_BYE, b"CSeq"), "no CSeq"),
        (_without(SIPP_RINGING, b"CSeq"), "no CSeq"),
        (SIPP_BYE.replace(b"Call-ID: 1-31337@127.0.0.1", b"Call-ID:"), "no Call-ID"),
        (SIPP_BYE.replace(b"CSeq: 2 BYE", b"CSeq: two BYE"), "bad CSeq"),
        (SIPP_BYE.replace(b"CSeq: 2 BYE", b"CSeq: 2147483648 BYE"), "bad CSeq"),
        (SIPP_BYE.replace(b"CSeq: 2 BYE", b"CSeq: 2"), "bad CSeq"),
        (SIPP_BYE.replace(b"CSeq: 2 BYE", b"CSeq: 2 INVITE"), "does not match"),
        (SIPP_INVITE.replace(b"Content-Length: 1", b"Content-Length: 9"), "only"),
        (SIPP_BYE.replace(b"Content-Length: 0", b"Content-Length: -1"), "Content-Length"),
        (SIPP_BYE.replace(b"Content-Length: 0", b"Content-Length: 99999999999999999999"), "Content-Length"),
        (SIPP_BYE.replace(b"Content-Length: 0", b"Content-Length: zero"), "Content-Length"),
        (SIPP_BYE.replace(b"sipp <", b"s\xe9pp <"), "UTF-8"),
        (SIPP_BYE.replace(b"sipp <", b"si\rpp <"), "control character"),
        (SIPP_BYE.replace(b"sipp <", b"si\x00pp <"), "control character"),
        (SIPP_BYE.replace(b"Max-Forwards: 70", b"Max-Forwards 70"), "header line"),
        (SIPP_BYE.replace(b"Max-Forwards: 70", b": 70"), "header line"),
        (SIPP_BYE[: SIPP_BYE.index(b"\r\n\r\n")], "no blank line"),
        (SIPP_BYE.replace(b"Content-Length: 0", b"Content-Length: 70000") + bytes(MAX_MESSAGE), "limit"),
    ],
)
def test_malformed_messages_say_why(data, reason):
    with pytest.raises(SipParseError, match=reason):
        parse(data)


def test_parse_error_is_a_voiceagent_error():
    assert issubclass(SipParseError, VoiceAgentError)


def test_folded_first_header_is_rejected():
    with pytest.raises(SipParseError, match="continuation"):
        parse(b"BYE sip:a SIP/2.0\r\n folded\r\nVia: x\r\n\r\n")


@pytest.mark.parametrize(
    "value, uri, tag",
    [
        ('"Bob <the boss>" <sip:bob@h;transport=udp>;tag=9fx', "sip:bob@h;transport=udp", "9fx"),
        ('"a \\" quote; tag=no" <sip:q@h>', "sip:q@h", None),
        ("sip:bob@h;tag=t1", "sip:bob@h", "t1"),  # addr-spec: its parameters are the header's (RFC 3261 20.10)
        ("Bob <sip:bob@h;tag=inside>", "sip:bob@h;tag=inside", None),
        ("<sip:a@h>;TAG=up, <sip:b@h>;tag=second", "sip:a@h", "up"),
    ],
)
def test_uri_and_tag(value, uri, tag):
    assert uri_of(value) == uri
    assert tag_of(value) == tag


def test_uri_of_garbage():
    for value in ("<sip:unclosed", "", "<>", '"name only" <'):
        with pytest.raises(SipParseError):
            uri_of(value)


def test_split_list():
    assert split_list('<sip:a;lr>, "x, y" <sip:b>,sip:c ,') == ["<sip:a;lr>", '"x, y" <sip:b>', "sip:c"]


def test_response_to_follows_rfc_3261_8_2_6():
    invite = parse(SOFTPHONE_INVITE)
    ok = response_to(
        invite,
        200,
        "OK",
        to_tag="as7d",
        extra_headers=[("Contact", "<sip:agent@10.0.0.5:5080>")],
        body=b"v=0\r\n",
        content_type="application/sdp",
    )
    assert ok.headers("Via") == invite.headers("Via")  # both lines, in order, the compact ones under their full name
    assert ok.header("To") == "<sip:support@example.com>;tag=as7d"
    assert (ok.header("From"), ok.header("Call-ID"), cseq(ok)) == (invite.header("f"), "Ws8bBfJqEe", (20, "INVITE"))
    assert ok.header("Record-Route") == "<sip:10.0.0.2;lr;ftag=Kq0JzE8>"
    back = parse(serialize(ok))
    assert back.body == b"v=0\r\n" and back.header("Content-Type") == "application/sdp"
    assert back.header("Content-Length") == "5"
    trying = response_to(invite, 100, "Trying")
    assert tag_of(trying.header("To")) is None and trying.header("Record-Route") is None
    assert response_to(parse(SIPP_BYE), 200, "OK", to_tag="other").header("To").endswith(";tag=a6c85cf")


def test_dialog_requests_from_the_agent():
    invite = parse(SIPP_INVITE)
    dialog = Dialog.from_request(invite, local_tag="a6c85cf", local_contact="sip:agent@127.0.0.1:5060")
    assert (dialog.remote_tag, dialog.remote_target, dialog.route_set) == (
        "31337SIPpTag091",
        "sip:sipp@127.0.0.1:5061",
        [],
    )
    bye = dialog.request("BYE", "127.0.0.1", 5060)
    assert (bye.method, bye.uri) == ("BYE", "sip:sipp@127.0.0.1:5061")
    assert bye.header("From") == "<sip:service@127.0.0.1:5060>;tag=a6c85cf"
    assert bye.header("To") == "<sip:sipp@127.0.0.1:5061>;tag=31337SIPpTag091"
    assert (bye.header("Call-ID"), cseq(bye), bye.header("Max-Forwards")) == ("1-31337@127.0.0.1", (1, "BYE"), "70")
    assert bye.header("Via").startswith("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK")
    refer = dialog.request("REFER", "127.0.0.1", 5060, extra_headers=[("Refer-To", "<sip:human@127.0.0.1:5070>")])
    assert cseq(refer) == (2, "REFER") and dialog.local_cseq == 2
    assert param(refer.header("Via"), "branch") != param(bye.header("Via"), "branch")
    assert refer.header("r") == "<sip:human@127.0.0.1:5070>"
    assert refer.header("Contact") == "<sip:agent@127.0.0.1:5060>"
    again = parse(serialize(refer))
    assert again.fields == [*refer.fields, ("Content-Length", "0")]
    assert dialog.request("INFO", "::1", 5060).header("Via").startswith("SIP/2.0/UDP [::1]:5060;")


def test_dialog_through_a_proxy():
    dialog = Dialog.from_request(parse(SOFTPHONE_INVITE), local_tag="t")
    assert dialog.route_set == ["<sip:10.0.0.2;lr;ftag=Kq0JzE8>"]
    bye = dialog.request("BYE", "10.0.0.5", 5080)
    assert bye.uri == "sip:alice@192.168.1.20:5060;transport=udp"  # loose routing: the target stays the R-URI
    assert bye.headers("Route") == ["<sip:10.0.0.2;lr;ftag=Kq0JzE8>"]
    assert bye.header("To") == "<sip:alice@example.com>;tag=Kq0JzE8"
    dialog.route_set = ["<sip:strict.example.com>", "<sip:p2;lr>"]
    strict = dialog.request("BYE", "10.0.0.5", 5080)
    assert strict.uri == "sip:strict.example.com"
    assert strict.headers("Route") == ["<sip:p2;lr>", "<sip:alice@192.168.1.20:5060;transport=udp>"]


def test_dialog_needs_a_contact():
    with pytest.raises(SipParseError, match="Contact"):
        Dialog.from_request(parse(_without(SIPP_INVITE, b"Contact")), local_tag="t")


def _check(data: bytes) -> None:
    """Parse or SipParseError, nothing else; what parses serializes back to the same message."""
    try:
        msg = parse(data)
    except SipParseError:
        return
    again = parse(serialize(msg))
    assert serialize(again) == serialize(msg)
    assert parse(serialize(again)) == again
    for value in (msg.header("From"), msg.header("To"), msg.header("Contact") or ""):
        tag_of(value)
        param(value, "branch")
        split_list(value)
        try:
            uri_of(value)
        except SipParseError:
            pass


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_parse_or_raise_sip_parse_error(data):
    _check(data)


@FUZZ
@given(mutations(CANONICAL))
def test_mutated_messages_parse_or_raise_sip_parse_error(data):
    _check(data)


@FUZZ
@given(
    st.sampled_from(CANONICAL),
    st.integers(0, 12),
    st.one_of(st.integers(-(10**30), 10**30).map(str), st.text(max_size=20)),
)
def test_header_level_mutations(data, line, value):
    """A header line dropped, or replaced by one with a random value (huge Content-Length, empty CSeq...)."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    at = 1 + line % (len(lines) - 1)
    name = lines[at].split(b":")[0]
    _check(b"\r\n".join(lines[:at] + lines[at + 1 :]) + b"\r\n\r\n" + body)
    _check(b"\r\n".join([*lines[:at], name + b": " + value.encode(), *lines[at + 1 :]]) + b"\r\n\r\n" + body)
