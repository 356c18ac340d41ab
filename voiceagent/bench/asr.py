"""Speech-recognition benchmark: word error rate, speed and peak memory of ASR backends, beside bare faster-whisper.

How it measures (``voiceagent bench asr --manifest FILE``):

- Clips come from a JSONL manifest (``id``, ``audio`` relative to the manifest's folder, ``start``/``end`` in seconds
  or null, ``text``) and are all decoded up front, untimed, to 16 kHz mono. A headerless ``.raw`` file is read as
  s16le mono at the entry's ``sample_rate`` (16 kHz when absent). With ``telephone=True`` each clip is instead what
  a phone call delivers: resampled to 8 kHz and passed through G.711 mu-law (encode + decode). Our backends are given
  that 8 kHz audio and resample it themselves, inside the timing; the bare baseline is given it resampled back to
  16 kHz up front, since bare faster-whisper takes only 16 kHz samples.
- The baseline, ``bare-faster-whisper``, is what one would write without this project: ``WhisperModel`` int8 on CPU
  with the same thread count, beam 1, ``condition_on_previous_text=False``, no VAD gate, no hallucination guard.
- Accuracy, real-time factor and memory: each backend, baseline first, runs alone in a fresh process (spawn), one
  after another: load (reported as ``load_s``, not in the RTF), one warm-up call on the first clip, then every clip
  timed with ``perf_counter``. ``rtf`` = summed recognition seconds / summed audio seconds. ``peak_rss_mb`` is that
  process's ``ru_maxrss`` (MiB) at the end: interpreter, its input clips and one backend, never another backend;
  ``rss_before_load_mb`` is the same process before loading, so the difference is the backend's own.
  ``wer`` is corpus-level (all errors / all reference words) by jiwer, after Whisper's ``EnglishTextNormalizer``.
- Speed against the baseline: separate processes run at different moments, and a few percent of drift would hide
  what we want to see, so the ratio comes from a second, paired pass. One fresh process loads the backend and the
  baseline side by side, warms both up, and times each clip with both, alternating which goes first.
  ``speed_ratio_vs_bare`` is the median over clips of (our seconds / bare seconds); ``total_ratio_vs_bare`` the
  ratio of the summed seconds. Our time is everything our ``transcribe`` does: resampling, the VAD speech gate,
  Whisper, the hallucination guard.

OMP_NUM_THREADS is set to ``threads`` in every worker process; each backend is also given ``threads``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from voiceagent.audio import Audio, phone_line, read_audio
from voiceagent.bench import print_to_stderr
from voiceagent.errors import AudioError, ConfigError, require

BARE = "bare-faster-whisper"
SAMPLE_RATE = 16000


@dataclass
class Clip:
    """One utterance: the audio the backends are given, and what was said."""

    id: str
    audio: Audio
    text: str


def load_clips(
    manifest: Path,
    limit: int | None = None,
    telephone: bool = False,
    progress: Callable[[str], None] = print_to_stderr,
) -> list[Clip]:
    """The first ``limit`` readable clips of a manifest, decoded: 16 kHz mono, or 8 kHz mu-law for ``telephone``.

    A clip whose audio cannot be read is skipped, with a note to ``progress``.
    """
    manifest = Path(manifest)
    clips = []
    for line in manifest.read_text().splitlines():
        if not line.strip():
            continue
        if limit is not None and len(clips) >= limit:
            break
        entry = json.loads(line)
        try:
            audio = _read_clip(manifest.parent / entry["audio"], entry)
        except AudioError as exc:
            progress(f"skipped {entry['id']}: {exc}")
            continue
        audio = phone_line(audio) if telephone else audio.resample(SAMPLE_RATE)
        clips.append(Clip(entry["id"], audio, entry["text"]))
    return clips


def _read_clip(path: Path, entry: dict) -> Audio:
    """A manifest entry's audio, mono, cut to its start and end."""
    if path.suffix.lower() == ".raw":  # headerless s16le mono, which read_audio does not guess at
        if not path.is_file():
            raise AudioError(f"{path}: no such file")
        data = path.read_bytes()
        audio = Audio.from_pcm16(data[: len(data) // 2 * 2], entry.get("sample_rate") or SAMPLE_RATE)
    else:
        audio = read_audio(path)
    audio = audio.mono()
    start, end = entry.get("start"), entry.get("end")
    if start is not None or end is not None:
        audio = audio.slice(start or 0.0, audio.duration_s if end is None else end)
    return audio


@cache
def _normaliser() -> Callable[[str], str]:
    return require("whisper.normalizers", "openai-whisper").EnglishTextNormalizer()


def word_errors(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[int, int]:
    """(errors, reference words) over a corpus, both sides through Whisper's English normaliser first.

    Errors are substitutions + deletions + insertions; a reference that normalises to nothing (``"um"``) adds no
    words, and anything recognised there counts as insertions.
    """
    jiwer = require("jiwer", "dev")
    normalise = _normaliser()
    out = jiwer.process_words([normalise(r) for r in references], [normalise(h) for h in hypotheses])
    return out.substitutions + out.deletions + out.insertions, out.substitutions + out.deletions + out.hits


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus-level word error rate: all errors / all reference words (normalised as in ``word_errors``)."""
    errors, words = word_errors(references, hypotheses)
    return errors / words if words else float(errors > 0)


# --- worker side: runs in a fresh process -------------------------------------------------------------------------


def _load_recogniser(backend: str, model: str, threads: int) -> Callable:
    """A loaded backend as a function: input in, text out. The bare baseline takes 16 kHz mono float32 samples, ours
    take ``Audio``."""
    if backend == BARE:
        from faster_whisper import WhisperModel

        from voiceagent import models

        path = models.resolve("asr", model)
        whisper = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads)
        language = "en" if model.endswith(".en") else None

        def recognise(samples: np.ndarray) -> str:
            segments, _ = whisper.transcribe(samples, beam_size=1, language=language, condition_on_previous_text=False)
            return " ".join(s.text.strip() for s in segments)

        return recognise

    from voiceagent.components.asr import create_asr

    asr = create_asr(backend, model=model, threads=threads)
    asr.load()
    return lambda audio: asr.transcribe(audio).text


def _timed(recognise: Callable, item) -> tuple[str, float]:
    started = time.perf_counter()
    text = recognise(item)
    return text, time.perf_counter() - started


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _recognise_alone(backend: str, inputs: list, model: str, threads: int) -> dict:
    """Load one backend, warm it up on the first input, recognise every input timed; with this process's memory."""
    rss_before_load = _rss_mb()
    started = time.perf_counter()
    recognise = _load_recogniser(backend, model, threads)
    load_s = time.perf_counter() - started
    recognise(inputs[0])
    texts, seconds = zip(*(_timed(recognise, item) for item in inputs))
    return {
        "texts": list(texts),
        "seconds": list(seconds),
        "load_s": load_s,
        "rss_before_load_mb": rss_before_load,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
    }


def _time_paired(backend: str, inputs: list, bare_inputs: list, model: str, threads: int) -> dict:
    """Load a backend and the bare baseline side by side, warm both up, then time each clip with both, alternating
    which goes first."""
    ours, bare = _load_recogniser(backend, model, threads), _load_recogniser(BARE, model, threads)
    ours(inputs[0])
    bare(bare_inputs[0])
    our_seconds, bare_seconds = [], []
    for i, (item, bare_item) in enumerate(zip(inputs, bare_inputs)):
        if i % 2 == 0:
            bare_seconds.append(_timed(bare, bare_item)[1])
            our_seconds.append(_timed(ours, item)[1])
        else:
            our_seconds.append(_timed(ours, item)[1])
            bare_seconds.append(_timed(bare, bare_item)[1])
    return {"seconds": our_seconds, "bare_seconds": bare_seconds}


def _guarded(threads: int, function: Callable, *args) -> dict:
    """Worker entry: pin the thread count before any engine loads; any failure comes back as ``{"error": ...}``
    (some of our exceptions do not survive pickling back to the parent)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        return function(*args)
    except Exception as exc:  # noqa: BLE001 - a benchmark records a broken backend and goes on
        return {"error": f"{type(exc).__name__}: {exc}"}


def _in_fresh_process(threads: int, function: Callable, *args) -> dict:
    """``function(*args)`` in a new interpreter (spawn), so its memory, threads and imports are its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(_guarded, threads, function, *args).result()
        except BrokenProcessPool as exc:  # the worker died: killed for memory, or a crash in native code
            return {"error": f"worker process died: {exc}"}


# --- parent side ----------------------------------------------------------------------------------------------------


def run_asr_bench(
    manifest: Path,
    backends: Sequence[str] = ("faster-whisper", "openai-whisper"),
    model: str = "tiny.en",
    telephone: bool = False,
    limit: int | None = None,
    threads: int = 2,
    progress: Callable[[str], None] = print_to_stderr,
) -> dict:
    """Benchmark ASR backends and bare faster-whisper on a manifest: ``{backend: {"wer", "rtf", "peak_rss_mb", ...}}``.

    Each backend's entry holds ``wer`` (fraction), ``errors``, ``words``, ``rtf``, ``recognition_s``, ``audio_s``,
    ``load_s``, ``peak_rss_mb``, ``rss_before_load_mb``, ``speed_ratio_vs_bare`` (median per clip),
    ``total_ratio_vs_bare``, ``clips`` and ``hypotheses`` (clip id -> text); or ``{"error": ...}`` for a backend that
    failed. The method is in this module's docstring.
    """
    clips = load_clips(manifest, limit=limit, telephone=telephone, progress=progress)
    if not clips:
        raise ConfigError(f"{manifest}: no readable clips")
    references = [clip.text for clip in clips]
    audio_s = sum(clip.audio.duration_s for clip in clips)
    inputs = {
        BARE: [clip.audio.resample(SAMPLE_RATE).samples for clip in clips],
        "ours": [clip.audio for clip in clips],
    }
    condition = "telephone (8 kHz G.711 mu-law)" if telephone else "16 kHz"
    progress(f"{len(clips)} clips, {audio_s:.1f} s of audio, {condition}; model {model}, {threads} threads")
    backends = [b for b in dict.fromkeys(backends) if b != BARE]

    results: dict[str, dict] = {}
    for backend in [BARE, *backends]:
        progress(f"{backend}: recognising {len(clips)} clips alone in a fresh process")
        run = _in_fresh_process(
            threads, _recognise_alone, backend, inputs[BARE if backend == BARE else "ours"], model, threads
        )
        if "error" in run:
            progress(f"{backend}: {run['error']}")
            results[backend] = {"error": run["error"]}
            continue
        errors, words = word_errors(references, run["texts"])
        recognition_s = sum(run["seconds"])
        results[backend] = {
            "wer": round(errors / words, 4) if words else None,
            "errors": errors,
            "words": words,
            "rtf": round(recognition_s / audio_s, 4),
            "recognition_s": round(recognition_s, 3),
            "audio_s": round(audio_s, 3),
            "load_s": round(run["load_s"], 3),
            "peak_rss_mb": round(run["peak_rss_mb"], 1),
            "rss_before_load_mb": round(run["rss_before_load_mb"], 1),
            "speed_ratio_vs_bare": 1.0 if backend == BARE else None,
            "total_ratio_vs_bare": 1.0 if backend == BARE else None,
            "clips": len(clips),
            "model": model,
            "threads": threads,
            "telephone": telephone,
            "hypotheses": {clip.id: text for clip, text in zip(clips, run["texts"])},
        }

    if "error" in results[BARE]:
        return results
    for backend in backends:
        if "error" in results[backend]:
            continue
        progress(f"{backend}: timing each clip against {BARE}, side by side in a fresh process")
        paired = _in_fresh_process(threads, _time_paired, backend, inputs["ours"], inputs[BARE], model, threads)
        if "error" in paired:
            progress(f"{backend}: paired timing failed: {paired['error']}")
            results[backend]["speed_error"] = paired["error"]
            continue
        ratios = [ours / bare for ours, bare in zip(paired["seconds"], paired["bare_seconds"])]
        results[backend]["speed_ratio_vs_bare"] = round(statistics.median(ratios), 4)
        results[backend]["total_ratio_vs_bare"] = round(sum(paired["seconds"]) / sum(paired["bare_seconds"]), 4)
    return results


def format_table(results: dict) -> str:
    """The results as a Markdown table: one row a backend."""
    lines = [
        "| backend | WER % | RTF | speed vs bare (median per clip / total) | peak RSS MB | load s | clips |",
        "|---|---|---|---|---|---|---|",
    ]
    for backend, r in results.items():
        if "error" in r:
            lines.append(f"| {backend} | error: {r['error']} | | | | | |")
            continue
        wer = "n/a" if r["wer"] is None else f"{100 * r['wer']:.1f}"
        if r.get("speed_ratio_vs_bare") is None:
            speed = "n/a"
        else:
            speed = f"{r['speed_ratio_vs_bare']:.3f} / {r['total_ratio_vs_bare']:.3f}"
        rss, load = f"{r['peak_rss_mb']:.0f}", f"{r['load_s']:.2f}"
        lines.append(f"| {backend} | {wer} | {r['rtf']:.3f} | {speed} | {rss} | {load} | {r['clips']} |")
    return "\n".join(lines)
