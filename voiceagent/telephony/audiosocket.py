"""Asterisk AudioSocket framing (TCP): a 1-byte kind, a 2-byte big-endian payload length, the payload.

Audio is signed 16-bit little-endian PCM, mono, 8 kHz for kind 0x10 and other rates for 0x11-0x16 in newer
Asterisk. The reader takes whatever chunks TCP delivers and raises AudioSocketError on anything that is not
AudioSocket, so a server can drop the connection cleanly.
"""

import struct
import uuid
from dataclasses import dataclass

from voiceagent.errors import VoiceAgentError

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO = 0x10  # slin, 8 kHz
KIND_ERROR = 0xFF
AUDIO_RATES = {0x10: 8000, 0x11: 12000, 0x12: 16000, 0x13: 24000, 0x14: 32000, 0x15: 44100, 0x16: 48000}
KINDS = frozenset({KIND_HANGUP, KIND_UUID, KIND_DTMF, KIND_ERROR, *AUDIO_RATES})
MAX_PAYLOAD = 16 * 1024  # 20 ms at 48 kHz is 1920 bytes: a longer frame is not a peer speaking AudioSocket
_HEADER = struct.Struct("!BH")


class AudioSocketError(VoiceAgentError):
    """Bytes that are not AudioSocket: an unknown kind, an oversize or malformed frame."""


@dataclass(frozen=True)
class Frame:
    """One AudioSocket frame."""

    kind: int
    payload: bytes = b""


def encode(kind: int, payload: bytes = b"") -> bytes:
    """One frame as bytes."""
    if kind not in KINDS:
        raise AudioSocketError(f"unknown AudioSocket kind 0x{kind:02x}")
    if len(payload) > 0xFFFF:
        raise AudioSocketError(f"payload of {len(payload)} bytes does not fit a frame")
    return _HEADER.pack(kind, len(payload)) + payload


class FrameReader:
    """Cuts a TCP byte stream into frames, however the bytes are split into chunks."""

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self.max_payload = max_payload
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back (left over when the peer closes mid-frame)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by `data`, in order; AudioSocketError on bytes that are not AudioSocket."""
        self._buffer += data
        frames = []
        while self._buffer:
            kind = self._buffer[0]
            if kind not in KINDS:
                raise AudioSocketError(f"unknown AudioSocket kind 0x{kind:02x}")
            if len(self._buffer) < _HEADER.size:
                break
            _, length = _HEADER.unpack_from(self._buffer)
            if length > self.max_payload:
                raise AudioSocketError(f"frame of {length} bytes is over the {self.max_payload}-byte limit")
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append(Frame(kind, bytes(self._buffer[_HEADER.size : end])))
            del self._buffer[:end]
        return frames


def sample_rate(kind: int) -> int:
    """The sample rate of an audio kind (0x10: 8000)."""
    if kind not in AUDIO_RATES:
        raise AudioSocketError(f"kind 0x{kind:02x} is not audio")
    return AUDIO_RATES[kind]


def uuid_of(frame: Frame) -> uuid.UUID:
    """The call's UUID from the first frame Asterisk sends."""
    if frame.kind != KIND_UUID or len(frame.payload) != 16:
        raise AudioSocketError(f"not a UUID frame: kind 0x{frame.kind:02x}, {len(frame.payload)} bytes")
    return uuid.UUID(bytes=frame.payload)


def digit_of(frame: Frame) -> str:
    """The key of a DTMF frame."""
    if frame.kind != KIND_DTMF or len(frame.payload) != 1 or not frame.payload.isascii():
        raise AudioSocketError(f"not a DTMF frame: kind 0x{frame.kind:02x}, payload {frame.payload[:8]!r}")
    return frame.payload.decode("ascii")


def audio_frame(pcm16: bytes, rate: int = 8000) -> bytes:
    """An audio frame of 16-bit little-endian PCM at `rate` (20 ms at 8 kHz is 320 bytes)."""
    kinds = {frame_rate: kind for kind, frame_rate in AUDIO_RATES.items()}
    if rate not in kinds:
        raise AudioSocketError(f"AudioSocket has no kind for {rate} Hz audio")
    if len(pcm16) % 2:
        raise AudioSocketError(f"16-bit audio of an odd number of bytes ({len(pcm16)})")
    return encode(kinds[rate], pcm16)


def hangup_frame() -> bytes:
    """The frame that ends the call."""
    return encode(KIND_HANGUP)
