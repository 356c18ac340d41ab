import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sip import mutations

from voiceagent.telephony.rtp import (
    DTMF_KEYS,
    DtmfEvent,
    DtmfReceiver,
    JitterBuffer,
    RtpError,
    RtpPacket,
    RtpSender,
    dtmf_packets,
    is_rtcp,
)

FUZZ = settings(max_examples=200, deadline=None)

# 20 ms of PCMU as SIPp's rtp_stream sends it: V=2, PT 0, seq 4711, ts 160000, SSRC 0x1234ABCD, 160 payload bytes.
PCMU = bytes.fromhex("8000126700027100" + "1234abcd") + bytes(range(96, 256))
# RFC 3550 6.4.1 sender report (PT 200) and 6.4.2 receiver report (PT 201), as sent on a muxed port.
RTCP_SR = bytes.fromhex("80c80006" + "1234abcd" + "00" * 20)
RTCP_RR = bytes.fromhex("81c90007" + "1234abcd" + "00" * 24)
RICH = RtpPacket(
    payload_type=101,
    sequence=65535,
    timestamp=0xFFFFFFFF,
    ssrc=7,
    payload=b"\x05\x8a\x03\x20",
    marker=True,
    csrcs=[1, 2],
    extension=b"\xbe\xde\x00\x00",
    extension_profile=0xBEDE,
    padding=3,
)
SAMPLES = [PCMU, RICH.to_bytes()]


def test_pcmu_packet():
    packet = RtpPacket.parse(PCMU)
    assert (packet.payload_type, packet.sequence, packet.timestamp, packet.ssrc) == (0, 4711, 160000, 0x1234ABCD)
    assert not packet.marker and packet.csrcs == [] and packet.extension is None and packet.padding == 0
    assert packet.payload == bytes(range(96, 256)) and len(packet.payload) == 160
    assert packet.to_bytes() == PCMU


def test_every_header_field_round_trips():
    data = RICH.to_bytes()
    assert data[:2] == b"\xb2\xe5"  # V=2 P=1 X=1 CC=2, M=1 PT=101
    assert data[-3:] == b"\x00\x00\x03"
    assert RtpPacket.parse(data) == RICH


@pytest.mark.parametrize(
    "data, reason",
    [
        (PCMU[:11], "shorter than an RTP header"),
        (b"\x40" + PCMU[1:], "version 1"),
        (b"\x83" + PCMU[1:12] + b"\x00" * 8, "3 CSRCs"),
        (b"\x90" + PCMU[1:12] + b"\xbe\xde", "extension"),
        (b"\x90" + PCMU[1:12] + b"\xbe\xde\x00\x02" + b"\x00" * 7, "extension"),
        (b"\xa0" + PCMU[1:-1] + b"\x00", "padding count 0"),
        (b"\xa0" + PCMU[1:-1] + b"\xff", "padding count 255"),
        (RTCP_SR, "RTCP"),
    ],
)
def test_invalid_packets(data, reason):
    with pytest.raises(RtpError, match=reason):
        RtpPacket.parse(data)


def test_rtcp_is_told_apart():
    assert is_rtcp(RTCP_SR) and is_rtcp(RTCP_RR)
    assert not is_rtcp(PCMU) and not is_rtcp(RICH.to_bytes()) and not is_rtcp(b"\x80") and not is_rtcp(b"\x00\xc8")


PACKETS = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127).filter(lambda pt: not 64 <= pt <= 95),  # 64-95 collide with RTCP (RFC 5761)
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=200),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    extension=st.none() | st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4]),
    extension_profile=st.integers(0, 0xFFFF),
    padding=st.integers(0, 255),
).filter(lambda p: p.extension is not None or p.extension_profile == 0)


@FUZZ
@given(PACKETS)
def test_round_trip(packet):
    assert RtpPacket.parse(packet.to_bytes()) == packet
    assert RtpPacket.parse(packet.to_bytes()).to_bytes() == packet.to_bytes()


def _check(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpError:
        return
    again = packet.to_bytes()  # the same bytes, but for what fills the padding (zeros)
    assert len(again) == len(data) and again[: len(data) - packet.padding] == data[: len(data) - packet.padding]
    assert RtpPacket.parse(again) == packet


@FUZZ
@given(st.binary(max_size=80))
def test_random_bytes(data):
    _check(data)


@FUZZ
@given(mutations(SAMPLES))
def test_mutated_packets(data):
    _check(data)


@FUZZ
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=40))
def test_any_first_two_bytes(first, second, rest):
    """Every version, flag, CSRC count, marker and payload type over a short or long packet."""
    _check(bytes([first, second]) + PCMU[2:12] + rest)


def _packet(sequence: int, ssrc: int = 1) -> RtpPacket:
    return RtpPacket(0, sequence & 0xFFFF, (sequence * 160) & 0xFFFFFFFF, ssrc, sequence.to_bytes(4, "big"))


def _pops(buffer: JitterBuffer, count: int) -> list[int | None]:
    return [None if (p := buffer.pop()) is None else int.from_bytes(p, "big") for _ in range(count)]


def test_jitter_buffer_in_order():
    buffer = JitterBuffer(depth=2)
    buffer.push(_packet(10), 0.0)
    assert buffer.pop() is None  # one packet waits: not started yet
    buffer.push(_packet(11), 0.02)
    assert _pops(buffer, 2) == [10, 11]
    assert (buffer.played, buffer.lost, buffer.late, buffer.underruns) == (2, 0, 0, 0)
    assert buffer.jitter == 0.0  # every packet exactly on time


def test_jitter_buffer_reorders_and_drops_duplicates():
    buffer = JitterBuffer(depth=3)
    for seq in (1, 3, 2, 3, 4, 1):
        buffer.push(_packet(seq), 0.0)
    assert _pops(buffer, 4) == [1, 2, 3, 4]
    assert (buffer.duplicates, buffer.lost, buffer.late) == (2, 0, 0)


def test_jitter_buffer_loss_and_late_packets():
    buffer = JitterBuffer(depth=2)
    for seq in (1, 2, 4, 5):
        buffer.push(_packet(seq), 0.0)
    assert _pops(buffer, 3) == [1, 2, None]  # 3 missing at its turn: silence
    buffer.push(_packet(3), 0.1)  # too late now
    assert _pops(buffer, 2) == [4, 5]
    assert (buffer.played, buffer.lost, buffer.late) == (4, 1, 1)
    buffer.push(_packet(5), 0.12)  # a copy of one already played
    assert buffer.late == 2


def test_jitter_buffer_sequence_wrap():
    buffer = JitterBuffer(depth=2)
    for seq in (65534, 65535, 65537, 65536, 65538):
        buffer.push(_packet(seq), 0.0)
    assert _pops(buffer, 5) == [65534, 65535, 65536, 65537, 65538]  # the header carries 65534, 65535, 0, 1, 2
    assert (buffer.lost, buffer.late, buffer.resets) == (0, 0, 0)


def test_jitter_buffer_new_ssrc_starts_over():
    buffer = JitterBuffer(depth=2)
    for seq in (100, 101, 102):
        buffer.push(_packet(seq), 0.0)
    assert _pops(buffer, 1) == [100]
    for seq in (7, 8):  # a re-INVITE to a new media source: new SSRC, new numbering
        buffer.push(_packet(seq, ssrc=2), 0.1)
    assert _pops(buffer, 3) == [7, 8, None]
    assert (buffer.resets, buffer.lost, buffer.late) == (1, 0, 0)


def test_jitter_buffer_stall_adds_no_delay():
    buffer = JitterBuffer(depth=2)
    for seq in (1, 2):
        buffer.push(_packet(seq), 0.0)
    assert _pops(buffer, 4) == [1, 2, None, None]
    assert buffer.underruns == 1  # one stall, however long
    for seq in (6, 7):  # 3, 4 and 5 never came
        buffer.push(_packet(seq), 1.0)
    assert _pops(buffer, 2) == [6, 7]  # straight on, no silence for the packets lost in the stall
    assert (buffer.lost, buffer.underruns) == (3, 1)
    buffer.push(_packet(5), 1.1)
    assert buffer.late == 1


def test_jitter_buffer_restarted_numbering_and_fast_sender():
    buffer = JitterBuffer(depth=2, max_depth=4, max_jump=100)
    for seq in (1, 2, 30000, 30001):  # the peer restarted its numbering under the same SSRC
        buffer.push(_packet(seq), 0.0)
    assert buffer.resets == 1 and _pops(buffer, 2) == [30000, 30001]
    for seq in range(30002, 30010):  # a burst bigger than max_depth: the oldest go
        buffer.push(_packet(seq), 0.1)
    assert buffer.dropped == 4
    assert _pops(buffer, 4) == [30006, 30007, 30008, 30009]
    assert buffer.lost == 0


def test_jitter_is_measured():
    buffer = JitterBuffer()
    for i, delay in enumerate([0.0, 0.03, 0.0, 0.03] * 10):
        buffer.push(_packet(i), i * 0.02 + delay)
    assert 0.015 < buffer.jitter < 0.035


@FUZZ
@given(st.lists(st.tuples(st.integers(-3, 40), st.booleans()), max_size=80), st.integers(1, 4))
def test_jitter_buffer_plays_each_packet_at_most_once_in_order(events, depth):
    """Any mix of arrivals (late, early, repeated, wrapped) and pops: what plays is in order, never twice."""
    buffer = JitterBuffer(depth=depth, max_depth=8)
    played = []
    for i, (offset, pop) in enumerate(events):
        buffer.push(_packet(65530 + i // 2 + offset), i * 0.01)
        if pop:
            played += [p for p in _pops(buffer, 1) if p is not None]
    played += [p for p in _pops(buffer, 100) if p is not None]
    assert played == sorted(set(played))
    assert buffer.played == len(played)


def test_dtmf_event_bytes():
    event = DtmfEvent("5", end=True, volume=10, duration=800)
    assert event.to_bytes() == b"\x05\x8a\x03\x20"
    assert DtmfEvent.parse(b"\x05\x8a\x03\x20") == event
    for key in DTMF_KEYS:
        assert DtmfEvent.parse(DtmfEvent(key, duration=160).to_bytes()).key == key
    assert DtmfEvent.parse(b"\x0b\x4a\x00\xa0") == DtmfEvent("#", volume=10, duration=160)  # the R bit is ignored


@pytest.mark.parametrize("payload, reason", [(b"\x05\x8a\x03", "3 bytes"), (b"\x10\x8a\x03\x20", "event 16")])
def test_dtmf_event_errors(payload, reason):
    with pytest.raises(RtpError, match=reason):
        DtmfEvent.parse(payload)


@pytest.mark.parametrize(
    "key, volume, duration", [("x", 10, 0), ("", 10, 0), ("12", 10, 0), ("1", 64, 0), ("1", 1, -1)]
)
def test_dtmf_event_rejects_bad_values(key, volume, duration):
    with pytest.raises(ValueError):
        DtmfEvent(key, volume=volume, duration=duration)


@FUZZ
@given(st.binary(max_size=8))
def test_dtmf_payloads_parse_or_raise_rtp_error(payload):
    try:
        event = DtmfEvent.parse(payload)
    except RtpError:
        return
    assert event.to_bytes() == payload[:1] + bytes([payload[1] & 0xBF]) + payload[2:4]


def test_dtmf_packets_of_one_press():
    packets = dtmf_packets("#", payload_type=101, ssrc=9, sequence=65534, timestamp=4000, duration_ms=100)
    events = [DtmfEvent.parse(p.payload) for p in packets]
    assert [p.sequence for p in packets] == [65534, 65535, 0, 1, 2, 3, 4, 5]
    assert {p.timestamp for p in packets} == {4000} and {p.payload_type for p in packets} == {101}
    assert [p.marker for p in packets] == [True] + [False] * 7
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800, 800]
    assert [e.end for e in events] == [False] * 5 + [True] * 3
    assert {e.key for e in events} == {"#"}


def _received(packets: list[RtpPacket]) -> list[str]:
    receiver = DtmfReceiver()
    return [key for p in packets if (key := receiver.push(RtpPacket.parse(p.to_bytes()))) is not None]


def _press(key: str, timestamp: int, sequence: int = 0) -> list[RtpPacket]:
    return dtmf_packets(key, 101, 5, sequence, timestamp)


def test_one_key_per_press():
    assert _received(_press("5", 1000)) == ["5"]  # five updates and three end packets


def test_lost_end_packets_still_give_the_key_once():
    without_ends = _press("5", 1000)[:-3]
    assert _received(without_ends + _press("7", 9000, 8)) == ["5", "7"]
    assert _received(_press("5", 1000)[-3:]) == ["5"]  # only the end packets came through


def test_two_presses_of_the_same_key():
    assert _received(_press("1", 1000) + _press("1", 3000, 8)) == ["1", "1"]


def test_straggler_of_an_earlier_press_is_ignored():
    first, second = _press("1", 1000), _press("2", 3000, 8)
    assert _received(first[:5] + second[:2] + first[5:] + second[2:]) == ["1", "2"]


def test_long_press_continues_under_a_new_timestamp():
    """RFC 4733 2.5.1.3: past 0xFFFF the sender starts a segment at timestamp + duration, without the marker."""
    receiver = DtmfReceiver()
    first = RtpPacket(101, 1, 1000, 5, DtmfEvent("9", duration=0xFFFF).to_bytes(), marker=True)
    goes_on = RtpPacket(101, 2, 1000 + 0xFFFF, 5, DtmfEvent("9", duration=160).to_bytes())
    new_press = RtpPacket(101, 3, 90000, 5, DtmfEvent("9", duration=160).to_bytes(), marker=True)
    assert [receiver.push(p) for p in (first, goes_on, new_press)] == ["9", None, "9"]


def test_receiver_ignores_other_events():
    flash = RtpPacket(101, 1, 1000, 5, b"\x10\x8a\x00\xa0", marker=True)
    assert DtmfReceiver().push(flash) is None


@FUZZ
@given(st.lists(st.sampled_from(DTMF_KEYS), min_size=1, max_size=6), st.data())
def test_presses_survive_loss_and_repeats(keys, data):
    """Each press is heard once as long as one of its packets arrives, whatever else is lost or repeated."""
    receiver, heard, sequence = DtmfReceiver(), [], 0
    for i, key in enumerate(keys):
        packets = _press(key, 1000 + 2000 * i, sequence)
        sequence += len(packets)
        kept = data.draw(st.lists(st.sampled_from(packets), min_size=1, max_size=12))
        heard += [k for p in sorted(kept, key=lambda p: p.sequence) if (k := receiver.push(p)) is not None]
    assert heard == keys


def test_sender_numbers_and_wraps():
    sender = RtpSender(payload_type=0, ssrc=3, sequence=65535, timestamp=0xFFFFFF60)
    first, second = sender.packet(bytes(160)), sender.packet(bytes(160))
    assert (first.sequence, first.timestamp, first.marker) == (65535, 0xFFFFFF60, True)
    assert (second.sequence, second.timestamp, second.marker) == (0, 0, False)
    assert RtpPacket.parse(first.to_bytes()) == first and len(first.to_bytes()) == 172
    press = sender.dtmf("4", payload_type=101, duration_ms=60)
    assert [p.sequence for p in press] == [1, 2, 3, 4, 5, 6] and {p.timestamp for p in press} == {160}
    after = sender.packet(bytes(160))
    assert (after.sequence, after.timestamp, after.marker) == (7, 160 + 480, False)


def test_sender_starts_at_random_values():
    a, b = RtpSender(0), RtpSender(0)
    assert (a.ssrc, a.sequence, a.timestamp) != (b.ssrc, b.sequence, b.timestamp)
    assert 0 <= a.sequence <= 0xFFFF and 0 <= a.timestamp <= 0xFFFFFFFF


def test_dtmf_event_layout():
    assert struct.unpack("!BBH", DtmfEvent("D", end=True, volume=63, duration=65535).to_bytes()) == (15, 0xBF, 65535)
