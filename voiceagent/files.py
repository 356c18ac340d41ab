"""Writing files so that a crash never leaves half of one: the whole new text, or the old file untouched."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` (text, or bytes as they are) in one step (written beside it, flushed to disk,
    then renamed over it)."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    partial.replace(path)
