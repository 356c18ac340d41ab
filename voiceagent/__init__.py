"""voiceagent: a self-hosted voice call-center agent.

Layers, imports pointing downward only: ``audio`` (PCM, codecs, files) → ``components`` (VAD, ASR, TTS)
→ ``models`` (resolving weights to files) → ``apps`` (batch, bench, the command line).
"""

__version__ = "0.1.0"
