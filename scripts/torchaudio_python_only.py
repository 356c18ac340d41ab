"""Let Coqui TTS run beside the CPU build of torch.

PyPI's torchaudio wheels are built against CUDA torch; beside torch's CPU build their compiled ops fail to load,
and ``import torchaudio`` fails with them. Every Coqui model imports torchaudio, but synthesis uses only its
Python parts. When (and only when) the compiled ops cannot load, this removes them from the environment, so
torchaudio imports as pure Python. Run with the environment's interpreter after installing the ``coqui`` extra.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

spec = importlib.util.find_spec("torchaudio")
if spec is None:
    sys.exit(0)
check = subprocess.run([sys.executable, "-c", "import torchaudio"], capture_output=True, text=True)
if check.returncode == 0:
    sys.exit(0)
lib = Path(spec.origin).parent / "lib"
removed = sorted(p.name for p in lib.glob("*.so"))
for name in removed:
    (lib / name).unlink()
subprocess.run([sys.executable, "-c", "import torchaudio"], check=True)
print(f"torchaudio: removed compiled ops that need CUDA torch ({', '.join(removed)}); Python parts kept")
