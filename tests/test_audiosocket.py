import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sip import mutations

from voiceagent.telephony.audiosocket import (
    AUDIO_RATES,
    KIND_AUDIO,
    KIND_DTMF,
    KIND_ERROR,
    KIND_HANGUP,
    KIND_UUID,
    KINDS,
    AudioSocketError,
    Frame,
    FrameReader,
    audio_frame,
    digit_of,
    encode,
    hangup_frame,
    sample_rate,
    uuid_of,
)

FUZZ = settings(max_examples=200, deadline=None)

CALL_ID = uuid.UUID("40325ec2-5efd-4bd3-805f-53576e581d13")
# What Asterisk's AudioSocket() sends at the start of a call: the UUID, 20 ms of slin audio, a key, a hangup.
ASTERISK = (
    b"\x01\x00\x10"
    + CALL_ID.bytes
    + b"\x10\x01\x40"
    + bytes(range(256))
    + bytes(64)
    + b"\x03\x00\x01"
    + b"5"
    + b"\x00\x00\x00"
)


def test_asterisk_stream_in_one_chunk():
    frames = FrameReader().feed(ASTERISK)
    assert [f.kind for f in frames] == [KIND_UUID, KIND_AUDIO, KIND_DTMF, KIND_HANGUP]
    assert uuid_of(frames[0]) == CALL_ID
    assert len(frames[1].payload) == 320 and sample_rate(frames[1].kind) == 8000
    assert digit_of(frames[2]) == "5"
    assert frames[3] == Frame(KIND_HANGUP, b"")
    assert b"".join(encode(f.kind, f.payload) for f in frames) == ASTERISK


@FUZZ
@given(st.lists(st.integers(0, len(ASTERISK)), max_size=12))
def test_any_split_into_chunks_gives_the_same_frames(cuts):
    reader = FrameReader()
    edges = [0, *sorted(cuts), len(ASTERISK)]
    frames = [f for start, end in zip(edges, edges[1:]) for f in reader.feed(ASTERISK[start:end])]
    assert frames == FrameReader().feed(ASTERISK)
    assert reader.pending == 0


def test_partial_frame_is_held_back():
    reader = FrameReader()
    assert reader.feed(b"\x10\x01") == [] and reader.pending == 2
    assert reader.feed(b"\x40" + bytes(319)) == [] and reader.pending == 322
    assert reader.feed(b"\x00\x03") == [Frame(KIND_AUDIO, bytes(320))] and reader.pending == 1


def test_builders():
    assert hangup_frame() == b"\x00\x00\x00"
    assert audio_frame(b"\x01\x00" * 160) == b"\x10\x01\x40" + b"\x01\x00" * 160
    assert audio_frame(bytes(640), rate=16000)[:3] == b"\x12\x02\x80"
    assert encode(KIND_ERROR, b"\x02") == b"\xff\x00\x01\x02"
    assert encode(KIND_UUID, CALL_ID.bytes) == ASTERISK[:19]
    for kind, rate in AUDIO_RATES.items():
        assert sample_rate(kind) == rate and audio_frame(b"", rate)[0] == kind


@pytest.mark.parametrize(
    "call, reason",
    [
        (lambda: FrameReader().feed(b"\x02\x00\x00"), "unknown AudioSocket kind 0x02"),
        (lambda: FrameReader().feed(b"GET / HTTP/1.1\r\n"), "unknown AudioSocket kind 0x47"),
        (lambda: FrameReader().feed(b"\x10\xff\xff"), "over the 16384-byte limit"),
        (lambda: FrameReader(max_payload=320).feed(b"\x10\x01\x41"), "321 bytes"),
        (lambda: encode(0x20, b""), "unknown AudioSocket kind 0x20"),
        (lambda: encode(KIND_AUDIO, bytes(70000)), "does not fit"),
        (lambda: audio_frame(bytes(3)), "odd number"),
        (lambda: audio_frame(bytes(4), rate=11025), "11025 Hz"),
        (lambda: sample_rate(KIND_DTMF), "not audio"),
        (lambda: uuid_of(Frame(KIND_UUID, b"short")), "not a UUID frame"),
        (lambda: uuid_of(Frame(KIND_AUDIO, CALL_ID.bytes)), "not a UUID frame"),
        (lambda: digit_of(Frame(KIND_DTMF, b"")), "not a DTMF frame"),
        (lambda: digit_of(Frame(KIND_DTMF, b"\xff")), "not a DTMF frame"),
    ],
)
def test_errors(call, reason):
    with pytest.raises(AudioSocketError, match=reason):
        call()


def _check(chunks: list[bytes]) -> None:
    """Frames or AudioSocketError, nothing else; what is read encodes back to the bytes it came from."""
    reader, frames = FrameReader(), []
    try:
        for chunk in chunks:
            frames += reader.feed(chunk)
    except AudioSocketError:
        return
    data = b"".join(chunks)
    assert b"".join(encode(f.kind, f.payload) for f in frames) == data[: len(data) - reader.pending]


@FUZZ
@given(st.lists(st.binary(max_size=40), max_size=5))
def test_random_bytes(chunks):
    _check(chunks)


@FUZZ
@given(mutations([ASTERISK]), st.integers(1, 64))
def test_mutated_streams(data, size):
    _check([data[i : i + size] for i in range(0, len(data), size)])


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(sorted(KINDS)), st.binary(max_size=50)), max_size=8))
def test_round_trip(frames):
    data = b"".join(encode(kind, payload) for kind, payload in frames)
    assert FrameReader().feed(data) == [Frame(kind, payload) for kind, payload in frames]
