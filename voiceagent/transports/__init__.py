"""Transports: the lines a call's audio comes and goes on (the local microphone and speaker, ...)."""
