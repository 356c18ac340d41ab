"""Every stage on CUDA, timed beside the CPU: what scripts/gpu_check.sh runs on a machine with an NVIDIA GPU.

Each stage is loaded with ``device="cuda"``, warmed up once, then timed (median of three) on the same input as on
the CPU: faster-whisper (float16) and openai-whisper on the JFK clip, the language model (CTranslate2 and
transformers) on one small-talk reply, Piper (onnxruntime's CUDA provider, where onnxruntime-gpu is installed) on
one sentence. A stage that cannot run on CUDA here says why in one line and the others go on. Without any GPU it
says so and exits 0: there is nothing to check.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from voiceagent.components import cuda_available
from voiceagent.errors import VoiceAgentError

JFK = Path(__file__).resolve().parents[2] / "audio_fixtures" / "jfk.wav"
SENTENCE = "Your order has shipped and should arrive on Tuesday the first of December."
PROMPT = "Hello! How are you today?"
STAGE_NAMES = ("asr faster-whisper", "asr openai-whisper", "lm ctranslate2", "lm transformers", "tts piper")


def _median_s(run, repeats: int = 3) -> float:
    run()  # warm-up: CUDA kernels, caches
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _stages(config: dict):
    """(stage, engine, a function that builds a runner for a device)."""
    from voiceagent import config as config_module
    from voiceagent.audio import read_audio

    audio = read_audio(JFK)

    def asr(backend: str):
        def build(device: str):
            model = config_module.build_asr(config, backend=backend, device=device)
            return lambda: model.transcribe(audio).text

        return build

    def lm(backend: str):
        def build(device: str):
            model = config_module.build_lm(config, backend=backend)
            model.device = device
            model.load()
            prompt = model.tokenizer.encode(PROMPT)
            return lambda: model.generate(prompt, 40)

        return build

    def tts(device: str):
        voice = config_module.build_tts(config, backend="piper")
        voice.device = device
        return lambda: voice.speak(SENTENCE)

    engines = ("ctranslate2", "torch", "ctranslate2", "torch", "onnxruntime")
    builders = (asr("faster-whisper"), asr("openai-whisper"), lm("ctranslate2"), lm("transformers"), tts)
    return list(zip(STAGE_NAMES, engines, builders))


def run_gpu_check(config: dict) -> dict:
    results = {}
    for stage, engine, build in _stages(config):
        if not cuda_available(engine):
            results[stage] = {"cuda": None, "why": f"{engine} sees no CUDA GPU here"}
            continue
        try:
            results[stage] = {"cuda_s": round(_median_s(build("cuda")), 4), "cpu_s": round(_median_s(build("cpu")), 4)}
        except (VoiceAgentError, RuntimeError, OSError, ImportError) as exc:
            results[stage] = {"cuda": None, "why": str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)}
    return results


def main() -> int:
    from voiceagent.config import load_config

    if not any(cuda_available(engine) for engine in ("ctranslate2", "torch", "onnxruntime")):
        print("gpu check: no CUDA GPU visible to CTranslate2, torch or onnxruntime on this machine: nothing to check")
        return 0
    config = load_config(sys.argv[1] if len(sys.argv) > 1 else None)
    results = run_gpu_check(config)
    for stage, result in results.items():
        if "cuda_s" in result:
            speedup = result["cpu_s"] / result["cuda_s"] if result["cuda_s"] else float("inf")
            print(
                f"{stage:20} cuda {result['cuda_s'] * 1000:8.1f} ms   cpu {result['cpu_s'] * 1000:8.1f} ms   "
                f"{speedup:5.1f}x"
            )
        else:
            print(f"{stage:20} not on CUDA: {result['why']}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
