"""The web side of ``voiceagent serve``: the HTTP API under /api/ and the browser softphone and call console."""
