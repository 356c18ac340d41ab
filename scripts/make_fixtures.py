"""Make the synthetic recorded calls in audio_fixtures/ (run once; the results are committed).

A caller (the Piper voice) asks about an order in three turns with pauses between them:
- call_mono_16k.wav: the caller alone, 16 kHz mono.
- call_phone_8k_mulaw.wav: the same call as a phone line records it, 8 kHz G.711 mu-law in a WAV.
- call_phone_8k.ulaw: the same, headerless mu-law bytes, as SIP tools (SIPp's rtp_stream) play them.
- call_stereo_22k.wav: caller on the left channel, an agent (espeak-ng) answering on the right, 22.05 kHz.

    python scripts/make_fixtures.py [audio_fixtures]
"""

import sys
from pathlib import Path

import numpy as np
import soundfile

from voiceagent.audio import Audio, write_wav
from voiceagent.components.tts import create_tts
from voiceagent.g711 import MULAW

CALLER_TURNS = [
    "Hi, I would like to check the status of my order.",
    "The order number is four five six seven.",
    "Thank you, that is all. Goodbye.",
]
AGENT_TURNS = [
    "Of course. What is your order number?",
    "Thank you. Your order has shipped.",
]
PAUSE_S = 1.5
RATE = 16000


def speak(tts, text: str) -> np.ndarray:
    return tts.speak(text, RATE).samples


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def main(folder: Path) -> None:
    caller_voice, agent_voice = create_tts("piper"), create_tts("espeak")
    caller_said = [speak(caller_voice, text) for text in CALLER_TURNS]
    agent_said = [speak(agent_voice, text) for text in AGENT_TURNS] + [np.zeros(0, np.float32)]
    pause = silence(PAUSE_S)

    mono_parts = [silence(0.5)]
    for said in caller_said:
        mono_parts += [said, pause]
    mono = Audio(np.concatenate(mono_parts) * 0.8, RATE)

    # Stereo: the caller speaks, a pause, the agent answers, a pause; each channel silent while the other talks.
    left, right = [silence(0.5)], [silence(0.5)]
    for said, answer in zip(caller_said, agent_said):
        left += [said, pause, silence(len(answer) / RATE), pause]
        right += [silence(len(said) / RATE), pause, answer, pause]
    stereo = Audio(np.stack([np.concatenate(left), np.concatenate(right)], axis=1) * 0.8, RATE)

    write_wav(folder / "call_mono_16k.wav", mono)
    phone = mono.resample(8000)
    soundfile.write(folder / "call_phone_8k_mulaw.wav", phone.samples, 8000, subtype="ULAW")
    (folder / "call_phone_8k.ulaw").write_bytes(MULAW.encode(phone.pcm16()))
    write_wav(folder / "call_stereo_22k.wav", stereo.resample(22050))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "audio_fixtures"))
