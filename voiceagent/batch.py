"""Recorded calls in bulk: each file split into speech turns by the VAD, transcribed, written as it finishes.

Output, under ``OUT``: ``<call>/transcript.json`` and ``<call>/transcript.srt`` for each call, and one line per
input file in ``results.jsonl``, appended and fsync'd as each call ends. A rerun skips every call that already has
a line there, so a crash loses at most the call in flight, and a bad file is recorded once, not retried.
A stereo recording is taken as caller on the left channel and agent on the right; mono is the caller alone.
With an agent, each caller turn also gets the reply the agent would have given live, with the call's turn context
so far: its text in ``transcript.json`` and its speech in ``<call>/reply_NN.wav``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from voiceagent.audio import RAW_G711_SUFFIXES, Audio, read_audio, write_wav
from voiceagent.errors import VoiceAgentError
from voiceagent.files import write_atomically
from voiceagent.privacy import Redactor

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", *RAW_G711_SUFFIXES}
CHANNEL_SPEAKERS = ("caller", "agent")


@dataclass
class Turn:
    speaker: str
    start: float
    end: float
    text: str


def find_calls(inputs: Iterable[str | Path]) -> list[tuple[str, Path]]:
    """(call id, file) for each input: files as given, folders searched for audio files. Ids are unique."""
    calls: list[tuple[str, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            for path in sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES):
                calls.append((str(path.relative_to(item).with_suffix("")).replace(os.sep, "__"), path))
        else:
            calls.append((item.stem, item))
    seen: dict[str, int] = {}
    unique = []
    for call, path in calls:
        seen[call] = seen.get(call, 0) + 1
        unique.append((call if seen[call] == 1 else f"{call}-{seen[call]}", path))
    return unique


def transcribe_call(path: Path, vad, asr) -> tuple[float, list[Turn]]:
    """The duration and the speech turns of one recorded call, in time order."""
    audio = read_audio(path)
    speakers = CHANNEL_SPEAKERS if audio.channels == 2 else ("caller",)
    turns = []
    for index, speaker in enumerate(speakers):
        channel = audio.channel(index) if len(speakers) == 2 else audio.mono()
        for start, end in vad.speech_segments(channel):
            text = asr.transcribe(channel.slice(start, end)).text
            if text:
                turns.append(Turn(speaker, start, end, text))
    return audio.duration_s, sorted(turns, key=lambda t: t.start)


def reply_to_call(turns: list[Turn], folder: Path, agent, tts, redactor: Redactor) -> list[dict]:
    """The agent's reply to each caller turn, in order, as one call; each spoken into ``reply_NN.wav``. A reply
    that reads out a card number (one the caller gave) is written as silence, and its entry says so."""
    from voiceagent.dialogue.state import CallState

    state = CallState()
    agent.greet(state)
    replies = []
    for index, turn in enumerate(turns):
        if turn.speaker != "caller" or state.ended:
            continue
        text = agent.reply(state, turn.text)
        audio_name = f"reply_{len(replies) + 1:02d}.wav"
        speech = tts.speak(text)
        reply = {"turn": index, "caller": turn.text, "reply": text, "audio": audio_name}
        if "card" in redactor.found(text):  # PCI: no card number in the audio written
            speech = Audio(np.zeros_like(speech.samples), speech.sample_rate)
            reply["audio_silenced"] = "card"
        write_wav(folder / audio_name, speech)
        replies.append(reply)
    if state.actions:
        replies[-1]["actions"] = state.actions
    return replies


def srt(turns: list[Turn]) -> str:
    """SubRip subtitles of the turns, the speaker before each line."""

    def stamp(seconds: float) -> str:
        ms = int(round(seconds * 1000))
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    return "".join(
        f"{i}\n{stamp(t.start)} --> {stamp(t.end)}\n{t.speaker}: {t.text}\n\n" for i, t in enumerate(turns, 1)
    )


class ResultsLog:
    """``results.jsonl``: one line per finished call, durable once appended."""

    def __init__(self, path: Path):
        self.path = path
        self.finished = {result["call"] for result in self.read(path) if isinstance(result.get("call"), str)}

    @staticmethod
    def read(path: Path) -> list[dict]:
        """The results in a ``results.jsonl`` so far, in order (none without the file). A line cut short by a
        crash (that call runs again), or one that is no result, is skipped."""
        results = []
        for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(result, dict):
                results.append(result)
        return results

    @staticmethod
    def write(path: Path, results: Iterable[dict]) -> None:
        """Replace a ``results.jsonl`` with these results, atomically (a purge takes a call's line out)."""
        write_atomically(path, "".join(json.dumps(result) + "\n" for result in results))

    def append(self, result: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(result) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.finished.add(result["call"])


def error_result(call: str, file: str | Path, exc: Exception) -> dict:
    """The result line of a call that failed: our own errors in their words, anything else with its type."""
    message = str(exc) if isinstance(exc, VoiceAgentError) else f"{type(exc).__name__}: {exc}"
    return {"call": call, "file": str(file), "status": "error", "error": message}


def build_stages(config: dict, model: str | None = None, domain: str | None = None, reply: bool = True, no_lm=False):
    """(vad, asr, agent, tts) for a batch from the config: ``agent`` and ``tts`` None when it does not reply."""
    from voiceagent import config as config_module

    vad = config_module.build_vad(config)
    asr = config_module.build_asr(config, model=model)
    if not reply:
        return vad, asr, None, None
    return vad, asr, config_module.build_agent(config, domain, no_lm=no_lm), config_module.build_tts(config)


def load_stages(*stages) -> None:
    """Load each stage given (None: not used), so that a model that will not load fails before any call runs."""
    for stage in stages:
        if stage is not None:
            stage.load()


def process_call(
    call: str,
    path: Path,
    out: Path,
    vad,
    asr,
    agent=None,
    tts=None,
    source: str | Path | None = None,
    *,
    redactor: Redactor | None = None,
) -> dict:
    """Transcribe one call (and reply to it, given an agent and a voice) into ``out/<call>/``; the result line,
    with the error if it failed. ``source``: the file the outputs name, when ``path`` is a copy of it (a Ray
    worker's). ``redactor`` hides personal data in what is written (default: every kind); the agent's replies
    are made from what was said."""
    folder = out / call
    file = str(source or path)
    redactor = redactor or Redactor()
    try:
        duration, turns = transcribe_call(path, vad, asr)
        folder.mkdir(parents=True, exist_ok=True)
        replies = reply_to_call(turns, folder, agent, tts, redactor) if agent is not None else None
    except Exception as exc:  # one bad call must never take down the others
        return error_result(call, file, exc)
    transcript = {
        "call": call,
        "file": file,
        "duration_s": round(duration, 3),
        "turns": [asdict(t) for t in turns],
    }
    if replies is not None:
        transcript["replies"] = replies
    transcript = {**redactor.data(transcript), "call": call, "file": file}  # the names of files stay as they are
    write_atomically(folder / "transcript.json", json.dumps(transcript, indent=2, ensure_ascii=False))
    write_atomically(folder / "transcript.srt", srt([Turn(**turn) for turn in transcript["turns"]]))
    result = {"call": call, "file": file, "status": "ok", "duration_s": round(duration, 3), "turns": len(turns)}
    return result if replies is None else {**result, "replies": len(replies)}


def run_batch(
    inputs: Iterable[str | Path],
    out: Path,
    vad,
    asr,
    agent=None,
    tts=None,
    progress: bool = True,
    *,
    redactor: Redactor | None = None,
) -> list[dict]:
    """Process every call not yet in ``out/results.jsonl``; the results of this run, in order."""
    load_stages(vad, asr, tts)  # a model that will not load stops the batch here, before any call is marked done
    out.mkdir(parents=True, exist_ok=True)
    log = ResultsLog(out / "results.jsonl")
    pending = [(call, path) for call, path in find_calls(inputs) if call not in log.finished]
    from tqdm import tqdm

    results = []
    for call, path in tqdm(pending, desc="calls", unit="call", disable=not progress, file=sys.stderr):
        result = process_call(call, path, out, vad, asr, agent, tts, redactor=redactor)
        log.append(result)
        results.append(result)
        if result["status"] == "error":
            tqdm.write(f"{path}: {result['error']}", file=sys.stderr)
    return results
