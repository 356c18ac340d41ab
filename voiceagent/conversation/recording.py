"""The audio of a live call, both sides, written as the call goes: ``<records>/<call id>.wav``.

Stereo 16-bit PCM at the transport's rate, the caller on the left and the agent on the right (the layout
``voiceagent batch`` reads). Each side arrives as the transport moves it (``feed`` and ``play``, both paced by the
line), so the two stay together in time; what one side has beyond the other waits in memory, and when one side
falls more than ``MAX_LAG_S`` behind (a transport that stopped sending, a call on hold) it is padded with silence,
so neither the drift nor the memory grows. A stretch of the caller's side can be silenced afterwards (a card
number said aloud), in the file or before it gets there; ``caller_frame`` says where it is, padding included.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: How far one side may run ahead of the other before the one behind is padded with silence.
MAX_LAG_S = 1.0


class CallRecording:
    """Both sides of one call into a WAV file. Not thread-safe: the session calls it under its lock."""

    def __init__(self, path: Path, sample_rate: int):
        import soundfile

        self.path = path
        self.sample_rate = sample_rate
        # Read-write: a stretch already written can be read back and silenced.
        self._file = soundfile.SoundFile(path, "w+", sample_rate, 2, "PCM_16", format="WAV")
        self._pending = {"caller": [], "agent": []}  # per side, samples not yet written
        self._pending_length = {"caller": 0, "agent": 0}
        self._written = 0  # frames (sample pairs) in the file
        self._muted: list[tuple[int, int]] = []  # caller stretches to silence, in frames from the start
        self._caller_given = 0  # samples of the caller's side given so far
        # Where silence was padded into the caller's side: (caller samples given before it, how much).
        self._caller_padding: list[tuple[int, int]] = []

    def caller(self, samples: np.ndarray) -> None:
        """The caller's next samples, as the line brought them."""
        self._add("caller", samples)

    def agent(self, samples: np.ndarray) -> None:
        """The agent's next samples, as the line played them."""
        self._add("agent", samples)

    def caller_frame(self, given: int) -> int:
        """Where in the file the caller's ``given``-th sample (counted over what ``caller`` was given) is: later
        by the silence padded in before it."""
        return given + sum(count for at, count in self._caller_padding if at <= given)

    def silence_caller(self, start: int, end: int) -> None:
        """Silence the caller's side from frame ``start`` to ``end`` (in the file already, or still to come)."""
        start, end = max(0, start), max(0, end)
        if end <= start:
            return
        self._muted.append((start, end))
        written_end = min(end, self._written)
        if start < written_end:
            import soundfile

            self._file.seek(start)
            frames = self._file.read(written_end - start, dtype="int16")
            frames[:, 0] = 0
            self._file.seek(start)
            self._file.write(frames)
            self._file.seek(0, soundfile.SEEK_END)

    def close(self) -> None:
        """Write what is left (the shorter side padded with silence) and close the file."""
        if self._file.closed:
            return
        behind = self._pending_length["caller"] - self._pending_length["agent"]
        self._pad("agent" if behind > 0 else "caller", abs(behind))
        self._write(self._pending_length["caller"])
        self._file.close()

    def _add(self, side: str, samples: np.ndarray) -> None:
        if self._file.closed or not len(samples):
            return
        self._pending[side].append(np.asarray(samples, np.float32).reshape(-1))
        self._pending_length[side] += len(samples)
        if side == "caller":
            self._caller_given += len(samples)
        other = "agent" if side == "caller" else "caller"
        lag = self._pending_length[side] - self._pending_length[other]
        if lag > MAX_LAG_S * self.sample_rate:
            self._pad(other, lag)
        self._write(min(self._pending_length.values()))

    def _pad(self, side: str, count: int) -> None:
        if count > 0:
            self._pending[side].append(np.zeros(count, np.float32))
            self._pending_length[side] += count
            if side == "caller":
                self._caller_padding.append((self._caller_given, count))

    def _take(self, side: str, count: int) -> np.ndarray:
        data = np.concatenate(self._pending[side]) if self._pending[side] else np.zeros(0, np.float32)
        self._pending[side] = [data[count:]] if len(data) > count else []
        self._pending_length[side] -= count
        return data[:count]

    def _write(self, count: int) -> None:
        if count <= 0:
            return
        frames = np.stack([self._take("caller", count), self._take("agent", count)], axis=1)
        for start, end in self._muted:  # silenced before it got to the file
            lo, hi = max(start - self._written, 0), min(end - self._written, count)
            if lo < hi:
                frames[lo:hi, 0] = 0.0
        self._file.write(np.clip(frames, -1.0, 1.0))
        self._written += count
