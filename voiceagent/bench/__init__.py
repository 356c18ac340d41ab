"""Benchmarks: speech recognition accuracy, speed and memory on a manifest of real recordings."""
