"""G.711 mu-law and A-law: 8-bit telephone codecs, table-driven (ITU-T G.711, as in Sun's reference g711.c)."""

import numpy as np

_ALL_PCM16 = np.arange(-32768, 32768, dtype=np.int32)
_MULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


def _mulaw_encode(x: np.ndarray) -> np.ndarray:
    pcm = x >> 2  # 14-bit magnitude, as the reference coder works
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    pcm = np.minimum(np.abs(pcm), 8159) + 33
    segment = np.searchsorted(_MULAW_SEGMENT_ENDS, pcm)
    value = (segment << 4) | ((pcm >> (segment + 1)) & 0x0F)
    value = np.where(segment >= 8, 0x7F, value)
    return (value ^ mask).astype(np.uint8)


def _mulaw_decode(u: np.ndarray) -> np.ndarray:
    u = ~u.astype(np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    magnitude = (((u & 0x0F) << 3) + 0x84 << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def _alaw_encode(x: np.ndarray) -> np.ndarray:
    pcm = x >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    pcm = np.where(pcm >= 0, pcm, -pcm - 1)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, pcm)
    shift = np.where(segment < 2, 1, segment)
    value = (np.minimum(segment, 7) << 4) | ((pcm >> shift) & 0x0F)
    value = np.where(segment >= 8, 0x7F, value)
    return (value ^ mask).astype(np.uint8)


def _alaw_decode(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.int32) ^ 0x55
    segment = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(segment == 0, t + 8, (t + 0x108) << np.maximum(segment - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


_MULAW_ENCODE = _mulaw_encode(_ALL_PCM16)
_ALAW_ENCODE = _alaw_encode(_ALL_PCM16)
_MULAW_DECODE = _mulaw_decode(np.arange(256))
_ALAW_DECODE = _alaw_decode(np.arange(256))


class G711Codec:
    """One G.711 law: 16-bit signed PCM <-> one byte a sample, 8 kHz on the wire."""

    sample_rate = 8000

    def __init__(self, name: str, encode_table: np.ndarray, decode_table: np.ndarray):
        self.name = name
        self._encode_table = encode_table
        self._decode_table = decode_table

    def encode(self, pcm16: np.ndarray) -> bytes:
        """int16 samples -> G.711 bytes."""
        return self._encode_table[pcm16.astype(np.int32) + 32768].tobytes()

    def decode(self, payload: bytes) -> np.ndarray:
        """G.711 bytes -> int16 samples."""
        return self._decode_table[np.frombuffer(payload, dtype=np.uint8)]


MULAW = G711Codec("PCMU", _MULAW_ENCODE, _MULAW_DECODE)
ALAW = G711Codec("PCMA", _ALAW_ENCODE, _ALAW_DECODE)
