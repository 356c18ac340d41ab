"""The CUDA check (scripts/gpu_check.sh): it reports every stage on a GPU, and says plainly when there is none."""

import subprocess
import sys

import pytest
from conftest import ROOT

from voiceagent.bench.gpu import STAGE_NAMES
from voiceagent.components import cuda_available

GPU = any(cuda_available(engine) for engine in ("ctranslate2", "torch", "onnxruntime"))


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )


def test_every_stage_is_timed_on_cuda_or_says_why_not():
    checked = run(sys.executable, "-m", "voiceagent.bench.gpu")
    assert checked.returncode == 0, checked.stderr
    if GPU:
        for stage in STAGE_NAMES:
            assert any(line.startswith(stage) for line in checked.stdout.splitlines())
    else:
        assert "no CUDA GPU" in checked.stdout


@pytest.mark.skipif(GPU, reason="the script runs the whole latency benchmark where there is a GPU")
def test_the_script_says_there_is_no_gpu():
    checked = run("bash", str(ROOT / "scripts" / "gpu_check.sh"))
    assert checked.returncode == 0 and "no CUDA GPU" in checked.stdout
