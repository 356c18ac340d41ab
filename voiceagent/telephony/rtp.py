"""RTP (RFC 3550) for G.711 calls: packets, a jitter buffer for the caller's stream, the agent's own stream, and
RFC 4733 DTMF (telephone-event) in both directions.

All of it is state and bytes; the transport reads the socket, keeps the 20 ms playout clock and sends.
"""

import secrets
import struct
from collections import deque
from dataclasses import dataclass, field

from voiceagent.errors import VoiceAgentError

DTMF_KEYS = "0123456789*#ABCD"  # RFC 4733 events 0-15
_HEADER = struct.Struct("!BBHII")


class RtpError(VoiceAgentError):
    """A datagram that is not a usable RTP packet (or telephone-event payload)."""


def is_rtcp(data: bytes) -> bool:
    """RTCP multiplexed on the RTP port (RFC 5761): version 2 and a packet type of 192-223 (SR, RR, SDES, BYE...)."""
    return len(data) >= 2 and data[0] >> 6 == 2 and 192 <= data[1] <= 223


@dataclass
class RtpPacket:
    """One RTP packet (version 2)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: list[int] = field(default_factory=list)
    extension: bytes | None = None  # the header extension's data, a multiple of 4 bytes
    extension_profile: int = 0
    padding: int = 0  # padding bytes after the payload, the count byte included; 0 for none

    @classmethod
    def parse(cls, data: bytes) -> "RtpPacket":
        """One packet from a datagram; RtpError for anything truncated, invalid, or RTCP."""
        if len(data) < _HEADER.size:
            raise RtpError(f"{len(data)} bytes is shorter than an RTP header")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if first >> 6 != 2:
            raise RtpError(f"RTP version {first >> 6}, not 2")
        if is_rtcp(data):
            raise RtpError(f"an RTCP packet (type {second}), not RTP")
        count = first & 0x0F
        offset = _HEADER.size + 4 * count
        if offset > len(data):
            raise RtpError(f"{count} CSRCs run past the end of the packet")
        csrcs = list(struct.unpack_from(f"!{count}I", data, _HEADER.size))
        extension, profile = None, 0
        if first & 0x10:
            if offset + 4 > len(data):
                raise RtpError("header extension runs past the end of the packet")
            profile, words = struct.unpack_from("!HH", data, offset)
            extension = data[offset + 4 : offset + 4 + 4 * words]
            offset += 4 + 4 * words
            if offset > len(data):
                raise RtpError("header extension runs past the end of the packet")
        padding = 0
        if first & 0x20:
            padding = data[-1]
            if padding == 0 or offset + padding > len(data):
                raise RtpError(f"padding count {padding} does not fit the packet")
        payload = data[offset : len(data) - padding]
        marker = bool(second & 0x80)
        return cls(second & 0x7F, sequence, timestamp, ssrc, payload, marker, csrcs, extension, profile, padding)

    def to_bytes(self) -> bytes:
        """The packet as it goes on the wire."""
        first = 0x80 | (0x20 if self.padding else 0) | (0x10 if self.extension is not None else 0) | len(self.csrcs)
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [_HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        parts += [struct.pack("!I", csrc) for csrc in self.csrcs]
        if self.extension is not None:
            parts += [struct.pack("!HH", self.extension_profile, len(self.extension) // 4), self.extension]
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)


class JitterBuffer:
    """Puts one incoming stream back in order and plays it out one packet (20 ms) per pop().

    Playout starts once `depth` packets wait. A packet missing at its turn plays as None (the caller inserts
    silence) and counts as lost; one that comes after its turn counts as late and is dropped. When the buffer runs
    dry (the network stalled, the caller went on hold) playout waits for `depth` packets again, so a stall adds no
    lasting delay; more than `max_depth` waiting (a sender whose clock runs fast) drops the oldest. A new SSRC, or a
    sequence number more than `max_jump` from the expected one (the peer restarted its stream), starts over.

    Push only the audio payload type: other packets of the stream (telephone-event) leave gaps that play as silence.
    """

    def __init__(self, depth: int = 2, max_depth: int = 10, max_jump: int = 100, clock_rate: int = 8000):
        self.depth = depth
        self.max_depth = max_depth
        self.max_jump = max_jump
        self.clock_rate = clock_rate
        self.played = 0
        self.lost = 0
        self.late = 0
        self.duplicates = 0
        self.dropped = 0
        self.underruns = 0
        self.resets = 0
        self.jitter = 0.0  # RFC 3550 interarrival jitter, in seconds
        self._ssrc: int | None = None
        self._restart()

    def _restart(self) -> None:
        self._packets: dict[int, bytes] = {}  # by extended sequence number (no 16-bit wrap)
        self._last: int | None = None  # the extended sequence number of the last slot played or given up
        self._playing = False
        self._previous: tuple[float, int] | None = None  # (arrival, timestamp) of the last packet, for jitter

    def _expected(self) -> int | None:
        if self._last is not None:
            return self._last + 1
        return min(self._packets) if self._packets else None

    def push(self, packet: RtpPacket, arrival_time: float) -> None:
        """Take one packet as it arrives (arrival_time in seconds on any steady clock)."""
        if packet.ssrc != self._ssrc:
            if self._ssrc is not None:
                self.resets += 1
            self._ssrc = packet.ssrc
            self._restart()
        expected = self._expected()
        sequence = packet.sequence
        if expected is not None:
            sequence = expected + ((packet.sequence - expected + 0x8000) & 0xFFFF) - 0x8000
            if abs(sequence - expected) > self.max_jump:
                self.resets += 1
                self._restart()
                sequence = packet.sequence
        self._measure_jitter(arrival_time, packet.timestamp)
        if self._last is not None and sequence <= self._last:
            self.late += 1
        elif sequence in self._packets:
            self.duplicates += 1
        else:
            self._packets[sequence] = packet.payload
            while len(self._packets) > self.max_depth:
                oldest = min(self._packets)
                self._skip_to(oldest)
                self._last = oldest
                del self._packets[oldest]
                self.dropped += 1

    def _measure_jitter(self, arrival: float, timestamp: int) -> None:
        if self._previous is not None:
            last_arrival, last_timestamp = self._previous
            elapsed = ((timestamp - last_timestamp + 2**31) & 0xFFFFFFFF) - 2**31
            difference = (arrival - last_arrival) - elapsed / self.clock_rate
            self.jitter += (abs(difference) - self.jitter) / 16
        self._previous = (arrival, timestamp)

    def _skip_to(self, sequence: int) -> None:
        """Move playout to just before `sequence`, counting the slots skipped on the way as lost."""
        if self._last is not None:
            self.lost += sequence - 1 - self._last
        self._last = sequence - 1

    def pop(self) -> bytes | None:
        """The next 20 ms: a payload, or None for silence (not started yet, a lost packet, a stall)."""
        if not self._playing:
            if len(self._packets) < max(self.depth, 1):
                return None
            self._playing = True
            self._skip_to(min(self._packets))
        if not self._packets:
            self._playing = False
            self.underruns += 1
            return None
        self._last += 1
        payload = self._packets.pop(self._last, None)
        if payload is None:
            self.lost += 1
        else:
            self.played += 1
        return payload


@dataclass(frozen=True)
class DtmfEvent:
    """One RFC 4733 telephone-event payload: the key, whether the press ended, its level and its length so far."""

    key: str
    end: bool = False
    volume: int = 10  # tone level, -dBm0 (0-63)
    duration: int = 0  # in timestamp units (8000 a second)

    def __post_init__(self):
        if len(self.key) != 1 or self.key not in DTMF_KEYS:
            raise ValueError(f"{self.key!r} is not a DTMF key (one of {DTMF_KEYS})")
        if not 0 <= self.volume <= 63 or not 0 <= self.duration <= 0xFFFF:
            raise ValueError(f"volume {self.volume} or duration {self.duration} out of range")

    @classmethod
    def parse(cls, payload: bytes) -> "DtmfEvent":
        """The event in a telephone-event payload; RtpError when it is too short or not a DTMF key (flash...)."""
        if len(payload) < 4:
            raise RtpError(f"telephone-event payload of {len(payload)} bytes, not 4")
        event, flags, duration = struct.unpack_from("!BBH", payload)
        if event >= len(DTMF_KEYS):
            raise RtpError(f"telephone-event {event} is not a DTMF key")
        return cls(DTMF_KEYS[event], bool(flags & 0x80), flags & 0x3F, duration)

    def to_bytes(self) -> bytes:
        """The 4-byte payload."""
        return struct.pack("!BBH", DTMF_KEYS.index(self.key), (0x80 if self.end else 0) | self.volume, self.duration)


class DtmfReceiver:
    """Turns the caller's telephone-event packets into keys, each press reported once, on its first packet.

    A press is one RTP timestamp: its updates and its (usually three) end packets add nothing, and a lost end packet
    loses nothing. A press longer than the 16-bit duration goes on under a new timestamp without the marker bit
    (RFC 4733 2.5.1.3): that is still the same press.
    """

    def __init__(self):
        self._presses: deque[tuple[int, int]] = deque(maxlen=16)  # (ssrc, timestamp), latest last
        self._key = ""
        self._duration = 0
        self._ended = True

    def push(self, packet: RtpPacket) -> str | None:
        """The key of a new press, else None (more of a press already reported, or not a DTMF key)."""
        try:
            event = DtmfEvent.parse(packet.payload)
        except RtpError:
            return None
        press = (packet.ssrc, packet.timestamp)
        if press in self._presses:
            if press == self._presses[-1]:
                self._duration = max(self._duration, event.duration)
                self._ended = self._ended or event.end
            return None
        previous = self._presses[-1] if self._presses else None
        goes_on = (
            previous is not None
            and not packet.marker
            and not self._ended
            and event.key == self._key
            and previous[0] == packet.ssrc
            and (packet.timestamp - previous[1]) & 0xFFFFFFFF == self._duration
        )
        self._presses.append(press)
        self._key, self._duration, self._ended = event.key, event.duration, event.end
        return None if goes_on else event.key


def dtmf_packets(
    key: str,
    payload_type: int,
    ssrc: int,
    sequence: int,
    timestamp: int,
    duration_ms: int = 100,
    volume: int = 10,
    interval_ms: int = 20,
    clock_rate: int = 8000,
) -> list[RtpPacket]:
    """The packets of one key press (RFC 4733): an update every interval_ms with a growing duration, the marker bit
    on the first, then the end packet three times, all with the press's start timestamp. Send them interval_ms apart.
    """
    step = clock_rate * interval_ms // 1000
    durations = [step * (i + 1) for i in range(max(1, duration_ms // interval_ms))]
    events = [DtmfEvent(key.upper(), False, volume, d) for d in durations]
    events += [DtmfEvent(key.upper(), True, volume, durations[-1])] * 3
    return [
        RtpPacket(payload_type, (sequence + i) & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc, event.to_bytes(), marker=i == 0)
        for i, event in enumerate(events)
    ]


@dataclass
class RtpSender:
    """The agent's outgoing stream: numbers and stamps its packets, from random starting values (RFC 3550 5.1)."""

    payload_type: int
    ssrc: int = field(default_factory=lambda: secrets.randbits(32))
    sequence: int = field(default_factory=lambda: secrets.randbits(16))
    timestamp: int = field(default_factory=lambda: secrets.randbits(32))
    marker: bool = True  # set on the next packet: the first of the stream

    def packet(self, payload: bytes) -> RtpPacket:
        """The next audio packet. G.711 has one byte a sample, so the timestamp grows by len(payload): 160 a 20 ms."""
        packet = RtpPacket(self.payload_type, self.sequence, self.timestamp, self.ssrc, payload, marker=self.marker)
        self.marker = False
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + len(payload)) & 0xFFFFFFFF
        return packet

    def dtmf(self, key: str, payload_type: int = 101, duration_ms: int = 100, volume: int = 10) -> list[RtpPacket]:
        """The packets of a key press in this stream (dtmf_packets); audio goes on after the press's duration."""
        packets = dtmf_packets(key, payload_type, self.ssrc, self.sequence, self.timestamp, duration_ms, volume)
        self.sequence = (self.sequence + len(packets)) & 0xFFFF
        self.timestamp = (self.timestamp + DtmfEvent.parse(packets[-1].payload).duration) & 0xFFFFFFFF
        return packets
