"""espeak-ng: a formant synthesiser, always there (a Debian package), in many languages."""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np

from voiceagent.audio import Audio
from voiceagent.components.tts import TTS
from voiceagent.errors import ConfigError, VoiceAgentError


class EspeakTTS(TTS):
    """``voice``: an espeak-ng voice or language (``en-us``, ``fr``, ``cmn``...); ``words_per_minute``: speed."""

    sample_rate = 22050

    def __init__(self, voice: str = "en-us", words_per_minute: int = 160):
        self.voice = voice
        self.words_per_minute = words_per_minute
        self._binary = None

    def load(self) -> None:
        if self._binary is not None:
            return
        self._binary = shutil.which("espeak-ng")
        if self._binary is None:
            raise VoiceAgentError("espeak-ng is not installed: apt-get install espeak-ng (scripts/system-deps.sh)")
        # espeak-ng falls back to its default voice without a word, so an unknown voice is caught here.
        if self.voice.split("+")[0] not in _voice_names(self._binary):
            raise ConfigError(f"espeak-ng has no voice {self.voice!r} (see: espeak-ng --voices)")

    def synthesize_sentence(self, sentence: str) -> Audio:
        result = subprocess.run(
            [self._binary, "-v", self.voice, "-s", str(self.words_per_minute), "--stdout", "--", sentence],
            capture_output=True,
        )
        if result.returncode != 0:
            raise VoiceAgentError(f"espeak-ng failed: {result.stderr.decode(errors='replace').strip()}")
        import soundfile

        samples, rate = soundfile.read(io.BytesIO(result.stdout), dtype="float32")
        return Audio(np.asarray(samples, dtype=np.float32), rate)


def _voice_names(binary: str) -> set[str]:
    """Every name espeak-ng takes for ``-v``: language, voice name, file, and the other languages a voice covers."""
    listing = subprocess.run([binary, "--voices"], capture_output=True, text=True, check=True).stdout
    names = set()
    for line in listing.splitlines()[1:]:
        _, language, _, name, file, *others = line.split()
        names |= {language, name, file, file.rsplit("/", 1)[-1]}
        names |= {other.strip("()") for other in others if other.startswith("(")}
    return names
