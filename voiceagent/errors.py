"""The errors voiceagent raises on purpose: each says what went wrong in one line a user can act on."""


class VoiceAgentError(Exception):
    """Base class: anything the user can fix (a bad file, an unknown model, a missing extra)."""


class AudioError(VoiceAgentError):
    """An audio file or buffer that cannot be used: missing, empty, corrupt, not audio."""


class ModelNotFound(VoiceAgentError):
    """A model reference that resolves to nothing."""


class ConfigError(VoiceAgentError):
    """A configuration file or option that does not make sense."""


class MissingDependency(VoiceAgentError):
    """An optional library is not installed; the message names the extra that brings it."""

    def __init__(self, module: str, extra: str | None):
        fix = f"pip install 'voiceagent[{extra}]'" if extra else "it is part of voiceagent: pip install voiceagent"
        super().__init__(f"{module} is not installed: {fix}")
        self.module = module
        self.extra = extra


def require(module: str, extra: str | None = None):
    """Import a heavy library where a backend loads, or say which extra brings it (None: the base install)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the library is there but something it needs is broken: show the real error
        raise MissingDependency(module, extra) from exc
