import audioop  # deprecated from 3.13, still the reference G.711 coder in 3.11

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voiceagent.g711 import ALAW, MULAW

ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)


@pytest.mark.parametrize(
    "codec, encode, decode", [(MULAW, audioop.lin2ulaw, audioop.ulaw2lin), (ALAW, audioop.lin2alaw, audioop.alaw2lin)]
)
def test_matches_reference_coder_on_every_sample_and_byte(codec, encode, decode):
    assert codec.encode(ALL_PCM) == encode(ALL_PCM.tobytes(), 2)
    every_byte = bytes(range(256))
    assert codec.decode(every_byte).tobytes() == decode(every_byte, 2)


@given(st.binary(max_size=400))
def test_decode_then_encode_is_identity_on_the_wire(payload):
    for codec in (MULAW, ALAW):
        back = codec.encode(codec.decode(payload))
        # Mu-law has two codes for zero (0x7F, 0xFF); every other byte survives the round trip exactly.
        assert codec.decode(back).tolist() == codec.decode(payload).tolist()


def test_round_trip_error_is_small_relative_to_level():
    x = (np.sin(np.linspace(0, 200, 8000)) * 20000).astype(np.int16)
    for codec in (MULAW, ALAW):
        y = codec.decode(codec.encode(x)).astype(np.float64)
        snr = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((x - y) ** 2))
        assert snr > 30
