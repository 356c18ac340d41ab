"""Benchmarks: speech recognition (WER, speed, memory) and the dialogue models (tokens/s, first clause)."""

import sys


def print_to_stderr(message: str) -> None:
    """The benchmarks' progress sink: one line on stderr."""
    print(message, file=sys.stderr, flush=True)
