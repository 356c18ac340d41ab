"""This computer's microphone and speaker as a call's line (``voiceagent talk``).

PortAudio through one of two bindings: sounddevice (the default) or PyAudio. A call opens two callback streams,
mono float32 in blocks of about 20 ms, at the input device's own rate unless told otherwise (the session
resamples). The input callback only queues each block; the thread that runs the call feeds them to the session,
so the audio thread never waits on speech detection. The output callback takes the session's next samples.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import queue
import signal
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from voiceagent.errors import VoiceAgentError, require

BACKENDS = ("sounddevice", "pyaudio")
#: The extra that brings both bindings.
EXTRA = "local-audio"
BLOCK_S = 0.02


@dataclass(frozen=True)
class AudioDevice:
    """One of PortAudio's devices, as ``--list-devices`` shows it."""

    index: int
    name: str
    inputs: int  # channels
    outputs: int
    sample_rate: int  # the device's default rate
    host_api: str  # ALSA, Core Audio, WASAPI...
    default_input: bool = False
    default_output: bool = False

    def channels(self, kind: str) -> int:
        return self.inputs if kind == "input" else self.outputs


def list_devices(backend: str = "sounddevice") -> list[AudioDevice]:
    """The audio devices PortAudio finds, through ``backend``."""
    binding = _binding(backend)
    try:
        return binding.devices()
    finally:
        binding.close()


def format_devices(devices: list[AudioDevice]) -> str:
    """A table of ``devices``; ``>`` marks the default input, ``<`` the default output."""
    header = ("", "index", "name", "in", "out", "rate", "host API")
    rows = [
        (
            (">" if d.default_input else "") + ("<" if d.default_output else ""),
            str(d.index),
            d.name,
            str(d.inputs),
            str(d.outputs),
            str(d.sample_rate),
            d.host_api,
        )
        for d in devices
    ]
    if not rows:
        return "no audio devices found"
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table)


def find_device(devices: list[AudioDevice], wanted: str | int | None, kind: str) -> AudioDevice:
    """The ``kind`` ("input" or "output") device ``wanted``: an index, a name or a case-insensitive part of one,
    or None for the default; VoiceAgentError when there is none or it cannot ``kind``."""
    hint = "(voiceagent talk --list-devices shows them)"
    if wanted is None or str(wanted).strip() == "":
        device = next((d for d in devices if getattr(d, f"default_{kind}")), None)
        if device is None:
            raise VoiceAgentError(f"no default {kind} device: choose one with --{kind}-device {hint}")
    elif isinstance(wanted, int) or str(wanted).strip().isdigit():
        device = next((d for d in devices if d.index == int(wanted)), None)
        if device is None:
            raise VoiceAgentError(f"no audio device number {int(wanted)} {hint}")
    else:
        name = str(wanted).strip().lower()
        matches = [d for d in devices if d.name.lower() == name] or [d for d in devices if name in d.name.lower()]
        if not matches:
            raise VoiceAgentError(f"no audio device is called {wanted!r} {hint}")
        usable = [d for d in matches if d.channels(kind)]
        # The same device under several host APIs (Windows) has one name: the first is as good as any.
        if len({d.name for d in usable}) > 1:
            names = ", ".join(f"{d.index} ({d.name})" for d in usable)
            raise VoiceAgentError(f"several {kind} devices match {wanted!r}: {names}: give its number")
        device = (usable or matches)[0]
    if not device.channels(kind):
        raise VoiceAgentError(f"audio device {device.index} ({device.name}) has no {kind} channels {hint}")
    return device


class LocalLine:
    """The microphone and speaker as the line of one call: ``run(session)`` carries it until someone hangs up.

    Devices are found at once (an index, a name or part of one; None: the default), so a wrong one is reported
    before any model loads. ``sample_rate`` defaults to the input device's own rate. Use it as a context manager
    (it holds PortAudio open).
    """

    def __init__(
        self,
        backend: str = "sounddevice",
        input_device: str | int | None = None,
        output_device: str | int | None = None,
        sample_rate: int | None = None,
        block_s: float = BLOCK_S,
    ):
        self.backend = backend
        self._binding = _binding(backend)
        try:
            devices = self._binding.devices()
            self.input = find_device(devices, input_device, "input")
            self.output = find_device(devices, output_device, "output")
        except BaseException:
            self._binding.close()
            raise
        self.sample_rate = int(sample_rate or self.input.sample_rate)
        self.block = max(1, round(block_s * self.sample_rate))

    def __enter__(self) -> LocalLine:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._binding.close()

    def run(self, session) -> dict:
        """Carry the call on ``session`` (opened at ``sample_rate``; answered here) until the agent hangs up, or
        the caller does (Ctrl-C, SIGTERM: the session is closed as "caller hung up"); the call record."""
        heard: queue.Queue[np.ndarray] = queue.Queue()
        hung_up = threading.Event()
        failures: list[Exception] = []

        def play(count: int) -> np.ndarray:
            try:
                return session.play(count)
            except Exception as exc:  # the call cannot go on: end it in the main thread, which raises it
                failures.append(exc)
                hung_up.set()
                return np.zeros(count, np.float32)

        microphone = self._binding.open(self.input, "input", self.sample_rate, self.block, heard.put)
        try:
            speaker = self._binding.open(self.output, "output", self.sample_rate, self.block, play)
        except BaseException:
            microphone.close()
            raise
        try:
            with _hang_up_on_signals(hung_up.set):
                microphone.start()
                speaker.start()
                session.start()
                while not session.ended.is_set() and not hung_up.is_set():
                    try:
                        session.feed(heard.get(timeout=0.05))
                    except queue.Empty:
                        pass
                if failures:
                    raise failures[0]
                if not session.ended.is_set():
                    session.close("caller hung up")
                # stop() lets the output play what it holds: the agent's last words are heard to the end.
                microphone.stop()
                speaker.stop()
        except KeyboardInterrupt:  # a second Ctrl-C, or one where signals cannot be caught (not the main thread)
            session.close("caller hung up")
        finally:
            microphone.close()
            speaker.close()
        return session.record()


@contextmanager
def _hang_up_on_signals(hang_up: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C and SIGTERM call ``hang_up`` (once; a second Ctrl-C interrupts) instead of stopping the program."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(number, frame):
        signal.signal(signal.SIGINT, signal.default_int_handler)
        hang_up()

    for number in (signal.SIGINT, signal.SIGTERM):
        previous[number] = signal.signal(number, handler)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


# The two PortAudio bindings -----------------------------------------------------------------------------------


class _Stream(Protocol):
    """What a call needs of a stream (a sounddevice stream is one as it is)."""

    def start(self) -> None: ...

    def stop(self) -> None:
        """Stop once what is queued for output has played."""

    def close(self) -> None: ...


class _Binding(ABC):
    @abstractmethod
    def devices(self) -> list[AudioDevice]: ...

    @abstractmethod
    def open(self, device: AudioDevice, kind: str, sample_rate: int, block: int, callback: Callable) -> _Stream:
        """A stopped mono float32 stream: input calls ``callback(samples)``, output ``callback(count) ->
        samples``."""

    def close(self) -> None:
        pass


def _binding(backend: str) -> _Binding:
    _quiet_audio_libraries()
    if backend == "sounddevice":
        return _SoundDevice()
    if backend == "pyaudio":
        return _PyAudio()
    raise VoiceAgentError(f"unknown audio backend {backend!r}: choose one of {', '.join(BACKENDS)}")


_silencers: list = []  # the handlers given to ALSA and JACK, kept: they call them as long as the process lives


def _quiet_audio_libraries() -> None:
    """Keep ALSA and JACK from printing lines for each device PortAudio probes and cannot open (dozens where
    there is no sound card, or no JACK server); PortAudio still reports the errors that matter."""
    if _silencers or not sys.platform.startswith("linux"):
        return
    if asound := _c_library("asound"):
        # void handler(const char *file, int line, const char *function, int err, const char *fmt, ...)
        c_char_p, c_int = ctypes.c_char_p, ctypes.c_int
        _silencers.append(ctypes.CFUNCTYPE(None, c_char_p, c_int, c_char_p, c_int, c_char_p)(_ignore))
        asound.snd_lib_error_set_handler(_silencers[-1])
    if jack := _c_library("jack"):
        _silencers.append(ctypes.CFUNCTYPE(None, ctypes.c_char_p)(_ignore))  # void handler(const char *message)
        jack.jack_set_error_function(_silencers[-1])
        jack.jack_set_info_function(_silencers[-1])


def _c_library(name: str) -> ctypes.CDLL | None:
    path = ctypes.util.find_library(name)
    try:
        return ctypes.CDLL(path) if path else None
    except OSError:
        return None


def _ignore(*args) -> None:
    pass


def _cannot_open(device: AudioDevice, kind: str, sample_rate: int, exc: Exception) -> VoiceAgentError:
    return VoiceAgentError(f"cannot open {kind} device {device.index} ({device.name}) at {sample_rate} Hz: {exc}")


class _SoundDevice(_Binding):
    def __init__(self):
        try:
            self.sd = require("sounddevice", EXTRA)
        except OSError as exc:  # the binding is there, the PortAudio library is not
            raise VoiceAgentError(f"{exc}: install libportaudio2 (scripts/system-deps.sh)") from None

    def devices(self) -> list[AudioDevice]:
        sd = self.sd
        apis = [api["name"] for api in sd.query_hostapis()]
        default_input, default_output = sd.default.device
        return [
            AudioDevice(
                index,
                info["name"],
                info["max_input_channels"],
                info["max_output_channels"],
                int(info["default_samplerate"]),
                apis[info["hostapi"]],
                index == default_input,
                index == default_output,
            )
            for index, info in enumerate(sd.query_devices())
        ]

    def open(self, device: AudioDevice, kind: str, sample_rate: int, block: int, callback: Callable) -> _Stream:
        sd = self.sd
        options = dict(device=device.index, samplerate=sample_rate, blocksize=block, channels=1, dtype="float32")
        try:
            if kind == "input":
                return sd.InputStream(callback=lambda data, count, time, status: callback(data[:, 0].copy()), **options)

            def fill(data, count, time, status):
                data[:, 0] = callback(count)

            return sd.OutputStream(callback=fill, **options)
        except sd.PortAudioError as exc:
            raise _cannot_open(device, kind, sample_rate, exc) from None


class _PyAudio(_Binding):
    def __init__(self):
        self.pyaudio = require("pyaudio", EXTRA)
        self.portaudio = self.pyaudio.PyAudio()

    def devices(self) -> list[AudioDevice]:
        portaudio = self.portaudio
        defaults = {}
        for kind in ("input", "output"):
            try:
                defaults[kind] = getattr(portaudio, f"get_default_{kind}_device_info")()["index"]
            except OSError:  # none
                defaults[kind] = None
        devices = []
        for index in range(portaudio.get_device_count()):
            info = portaudio.get_device_info_by_index(index)
            api = portaudio.get_host_api_info_by_index(info["hostApi"])["name"]
            devices.append(
                AudioDevice(
                    index,
                    info["name"],
                    int(info["maxInputChannels"]),
                    int(info["maxOutputChannels"]),
                    int(info["defaultSampleRate"]),
                    api,
                    index == defaults["input"],
                    index == defaults["output"],
                )
            )
        return devices

    def open(self, device: AudioDevice, kind: str, sample_rate: int, block: int, callback: Callable) -> _Stream:
        pyaudio = self.pyaudio
        carry_on = pyaudio.paContinue

        if kind == "input":

            def run(data, count, time_info, status):
                callback(np.frombuffer(data, np.float32).copy())
                return None, carry_on
        else:

            def run(data, count, time_info, status):
                return np.asarray(callback(count), np.float32).tobytes(), carry_on

        try:
            stream = self.portaudio.open(
                rate=sample_rate,
                channels=1,
                format=pyaudio.paFloat32,
                frames_per_buffer=block,
                start=False,
                stream_callback=run,
                **{kind: True, f"{kind}_device_index": device.index},
            )
        except OSError as exc:
            raise _cannot_open(device, kind, sample_rate, exc) from None
        return _PyAudioStream(stream)

    def close(self) -> None:
        self.portaudio.terminate()


class _PyAudioStream:
    def __init__(self, stream):
        self.stream = stream

    def start(self) -> None:
        self.stream.start_stream()

    def stop(self) -> None:
        self.stream.stop_stream()

    def close(self) -> None:
        self.stream.close()
