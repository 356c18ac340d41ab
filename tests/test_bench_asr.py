"""The speech-recognition benchmark: its WER arithmetic, and one small real run against bare faster-whisper."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from voiceagent.audio import Audio, phone_line
from voiceagent.bench.asr import BARE, corpus_wer, format_table, run_asr_bench, word_errors

# The dev set's misc_jfk.wav and psx_004.wav, as copied into audio_fixtures/.
CLIPS = {
    "jfk.wav": "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country.",
    "five_five.wav": "five five",
}


def test_wer_is_corpus_level_after_whisper_normalisation():
    # Case, punctuation, spelled numbers, British spelling and fillers are normalised away.
    assert word_errors(["Ten meters, Mr. Smith!"], ["10 metres mister smith"]) == (0, 4)
    assert word_errors(["um"], [""]) == (0, 0)
    # Corpus level: 1 error over 1 + 4 words, not the mean of the per-clip rates (1.0 and 0.0).
    assert corpus_wer(["hello", "go forward ten meters"], ["yellow", "go forward 10 meters"]) == pytest.approx(0.2)
    assert word_errors(["a b"], ["a b c"]) == (1, 2)  # an insertion
    assert word_errors(["a b c"], [""]) == (3, 3)  # deletions


def test_phone_line_is_8khz_mu_law():
    t = np.arange(16000) / 16000
    audio = Audio((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    phone = phone_line(audio)
    assert phone.sample_rate == 8000 and len(phone.samples) == 8000
    assert np.abs(phone.samples - audio.resample(8000).samples).max() < 0.02  # mu-law step near 0.5 full scale


@pytest.mark.slow
def test_bench_on_two_clips_matches_bare_faster_whisper(tmp_path, fixtures):
    lines = []
    for name, text in CLIPS.items():
        shutil.copyfile(fixtures / name, tmp_path / name)
        lines.append(json.dumps({"id": Path(name).stem, "audio": name, "start": None, "end": None, "text": text}))
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")

    results = run_asr_bench(manifest, backends=["faster-whisper"], limit=2, progress=lambda _: None)

    assert set(results) == {BARE, "faster-whisper"}
    for r in results.values():
        assert {"wer", "rtf", "peak_rss_mb", "speed_ratio_vs_bare", "load_s", "clips"} <= set(r)
        assert r["clips"] == 2 and r["wer"] < 0.2
        assert 0 < r["rtf"] < 5 and r["peak_rss_mb"] > 50
    assert results["faster-whisper"]["wer"] == results[BARE]["wer"]
    assert results["faster-whisper"]["speed_ratio_vs_bare"] > 0
    assert "faster-whisper" in format_table(results)
