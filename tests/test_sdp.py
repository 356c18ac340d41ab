import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sip import SIPP_SDP, SOFTPHONE_SDP, mutations

from voiceagent.telephony.sdp import Codec, NoCommonCodec, SdpError, SessionDescription, answer, parse

FUZZ = settings(max_examples=200, deadline=None)


def sdp(text: str) -> bytes:
    return ("\r\n".join(text.strip("\n").split("\n")) + "\r\n").encode()


HOLD = sdp("""
v=0
o=- 8000 8001 IN IP4 10.1.1.1
s=-
c=IN IP4 10.1.1.1
t=0 0
m=audio 4000 RTP/AVP 8 101
a=rtpmap:101 telephone-event/8000
a=sendonly
""")
SAMPLES = [SIPP_SDP, SOFTPHONE_SDP, HOLD]


def test_sipp_offer():
    offer = parse(SIPP_SDP)
    audio = offer.audio
    assert offer.origin == "sipp 53655765 2353687637 IN IP4 127.0.0.1"
    assert (audio.address, audio.port, audio.protocol, audio.ptime, audio.direction) == (
        "127.0.0.1",
        6000,
        "RTP/AVP",
        20,
        "sendrecv",
    )
    assert audio.codecs == [Codec(0, "PCMU", 8000)]
    assert audio.telephone_event is None and not audio.on_hold


def test_sipp_answer():
    body, chosen = answer(parse(SIPP_SDP), "127.0.0.1", 20000, session_id=42)
    assert chosen == Codec(0, "PCMU")
    assert body == sdp("""
v=0
o=voiceagent 42 42 IN IP4 127.0.0.1
s=voiceagent
c=IN IP4 127.0.0.1
t=0 0
m=audio 20000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=ptime:20
a=sendrecv
""")
    mine = parse(body).audio
    assert (mine.address, mine.port, mine.codecs) == ("127.0.0.1", 20000, [Codec(0, "PCMU")])


def test_softphone_offer_and_answer():
    offer = parse(SOFTPHONE_SDP)
    assert [m.kind for m in offer.media] == ["audio", "video"]
    audio = offer.audio
    assert [c.payload_type for c in audio.codecs] == [96, 97, 98, 0, 8, 18, 101, 99, 100]
    assert audio.codecs[0] == Codec(96, "opus", 48000, 2)
    assert audio.codecs[3] == Codec(0, "PCMU")  # static, no rtpmap
    assert audio.telephone_event == 100  # the 8 kHz one
    assert offer.media[1].address == "192.168.1.20" and offer.media[1].codecs[0] == Codec(96, "VP8", 90000)
    body, chosen = answer(offer, "10.0.0.5", 30000, 7, preferred=("PCMA", "PCMU"), version=8)
    assert chosen == Codec(8, "PCMA")
    assert body == sdp("""
v=0
o=voiceagent 7 8 IN IP4 10.0.0.5
s=voiceagent
c=IN IP4 10.0.0.5
t=0 0
m=audio 30000 RTP/AVP 8 100
a=rtpmap:8 PCMA/8000
a=rtpmap:100 telephone-event/8000
a=fmtp:100 0-15
a=ptime:20
a=sendrecv
m=video 0 RTP/AVP 96
""")
    mine = parse(body)
    assert mine.audio.telephone_event == 100 and mine.media[1].port == 0


def test_hold_is_answered_recvonly():
    offer = parse(HOLD)
    assert offer.audio.on_hold and offer.audio.direction == "sendonly"
    body, chosen = answer(offer, "::1", 5004, 1)
    assert chosen == Codec(8, "PCMA")
    assert b"a=recvonly\r\n" in body and b"c=IN IP6 ::1\r\n" in body
    assert parse(HOLD.replace(b"a=sendonly", b"a=inactive")).audio.on_hold
    old_style = parse(HOLD.replace(b"a=sendonly\r\n", b"").replace(b"10.1.1.1\r\nt=", b"0.0.0.0\r\nt="))
    assert old_style.audio.on_hold and old_style.audio.direction == "sendrecv"


def test_session_level_attributes_and_media_level_overrides():
    offer = parse(
        sdp("""
v=0
o=- 1 1 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
a=inactive
a=ptime:30
m=audio 4000 RTP/AVP 0
c=IN IP4 10.0.0.9/127
m=audio 4002 RTP/AVP 0
a=sendrecv
a=ptime:20
""")
    )
    first, second = offer.media
    assert (first.address, first.direction, first.ptime) == ("10.0.0.9", "inactive", 30)
    assert (second.address, second.direction, second.ptime) == ("10.0.0.1", "sendrecv", 20)


def test_answer_takes_the_first_usable_audio_stream():
    offer = parse(
        sdp("""
v=0
o=- 1 1 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
m=audio 4000 RTP/SAVP 0
m=audio 0 RTP/AVP 0
m=audio 4004 RTP/AVP 0
""")
    )
    body, _ = answer(offer, "10.0.0.2", 6000, 1)
    assert body.split(b"t=0 0\r\n")[1].startswith(
        b"m=audio 0 RTP/SAVP 0\r\nm=audio 0 RTP/AVP 0\r\nm=audio 6000 RTP/AVP 0\r\n"
    )


@pytest.mark.parametrize(
    "text, reason",
    [
        (
            "v=0\nm=audio 4000 RTP/AVP 9 18\nc=IN IP4 1.2.3.4",
            "none of PCMU, PCMA among the offered G722/8000, G729/8000",
        ),
        ("v=0\nm=audio 4000 RTP/AVP 96\nc=IN IP4 1.2.3.4\na=rtpmap:96 PCMU/16000", "PCMU/16000"),
        ("v=0\nm=audio 4000 RTP/AVP 96\nc=IN IP4 1.2.3.4", "no known codec"),
        ("v=0\nc=IN IP4 1.2.3.4\nm=video 4000 RTP/AVP 96", "no audio"),
        ("v=0\nc=IN IP4 1.2.3.4\nm=audio 0 RTP/AVP 0", "no audio"),
        ("v=0\nc=IN IP4 1.2.3.4\nm=audio 4000 RTP/SAVP 0", "no audio"),
    ],
)
def test_no_common_codec(text, reason):
    with pytest.raises(NoCommonCodec, match=reason):
        answer(parse(sdp(text)), "127.0.0.1", 5000, 1)


def test_dynamic_payload_type_for_pcmu_is_the_callers():
    offer = parse(sdp("v=0\nc=IN IP4 1.2.3.4\nm=audio 4000 RTP/AVP 112\na=rtpmap:112 pcmu/8000"))
    assert answer(offer, "127.0.0.1", 5000, 1)[1] == Codec(112, "PCMU")


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "v=0"),
        ("o=- 1 1 IN IP4 1.2.3.4\nv=0", "v=0"),
        ("v=1", "v=0"),
        ("v=0\nthis is not sdp", "bad SDP line"),
        ("v=0\nA=sendrecv", "bad SDP line"),
        ("v=0\nm=audio 4000 RTP/AVP", "m= line"),
        ("v=0\nm=audio 99999 RTP/AVP 0\nc=IN IP4 1.2.3.4", "port"),
        ("v=0\nm=audio -1 RTP/AVP 0\nc=IN IP4 1.2.3.4", "m= line"),
        ("v=0\nm=audio 4000 RTP/AVP 0", "connection address"),
        ("v=0\nc=IN IP4\nm=audio 4000 RTP/AVP 0", "c= line"),
        ("v=0\nc=IN IPX 1.2.3.4\nm=audio 4000 RTP/AVP 0", "c= line"),
        ("v=0\nc=IN IP4 1.2.3.4\nm=audio 4000 RTP/AVP 0 128", "payload type"),
        ("v=0\nc=IN IP4 1.2.3.4\nm=audio 4000 RTP/AVP PCMU", "payload type"),
        ("v=0\nc=IN IP4 1.2.3.4\nm=audio 4000 RTP/AVP 0\na=rtpmap:0 PCMU", "rtpmap"),
        ("v=0\nc=IN IP4 1.2.3.4\nm=audio 4000 RTP/AVP 0\na=rtpmap:200 X/8000", "rtpmap"),
        ("v=0\nc=IN IP4 1.2.3.4\nm=audio 4000 RTP/AVP 0\na=ptime:twenty", "ptime"),
    ],
)
def test_garbage_is_an_sdp_error(text, reason):
    with pytest.raises(SdpError, match=reason):
        parse(sdp(text) if text else b"")


def test_not_utf8():
    with pytest.raises(SdpError, match="UTF-8"):
        parse(SIPP_SDP.replace(b"s=-", b"s=\xff"))


def test_lenient_on_line_ends_and_unknown_lines():
    assert parse(SIPP_SDP.replace(b"\r\n", b"\n")) == parse(SIPP_SDP)
    extra = SIPP_SDP + b"\r\nb=AS:64\r\na=x-unknown\r\nm=application 9 TCP/MSRP *\r\n\r\n"
    assert parse(extra).media[1].formats == ["*"]


def _check(data: bytes) -> None:
    """Parse or SdpError, and an answer or NoCommonCodec (an SdpError too), nothing else."""
    try:
        offer = parse(data)
        assert isinstance(offer, SessionDescription)
        body, chosen = answer(offer, "127.0.0.1", 5000, 1)
    except SdpError:
        return
    assert parse(body).audio.codecs[0] == chosen


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(data):
    _check(data)


@FUZZ
@given(mutations(SAMPLES))
def test_mutated_offers(data):
    _check(data)


LINES = st.one_of(
    st.sampled_from(["m=audio", "c=IN IP4", "a=rtpmap:", "a=ptime:", "a=fmtp:", "a=sendonly", "o="]).flatmap(
        lambda prefix: st.text(max_size=30).map(lambda rest: prefix + rest)
    ),
    st.builds(
        "m=audio {} RTP/AVP {}".format,
        st.integers(-5, 70000),
        st.lists(st.integers(-5, 300).map(str), min_size=0, max_size=4).map(" ".join),
    ),
    st.builds(
        "a=rtpmap:{} {}/{}".format,
        st.integers(-5, 300),
        st.sampled_from(["PCMU", "PCMA", "telephone-event"]),
        st.integers(0, 10**7),
    ),
)


@FUZZ
@given(st.sampled_from(SAMPLES), st.integers(0, 30), LINES, st.booleans())
def test_line_level_mutations(data, at, line, replace):
    """A line replaced or added: wrong payload types, odd ports, broken rtpmap, c= and m= lines."""
    lines = data.decode().split("\r\n")
    at %= len(lines)
    lines[at : at + replace] = [line]
    _check("\r\n".join(lines).encode())
