"""Shared body of the import stubs (see README.md): any name imported from a stub is a placeholder that raises
when it is used."""


def make_getattr(module):
    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Missing(f"{module}.{name}")

    return __getattr__


class _Missing:
    def __init__(self, what):
        self._what = what

    def _fail(self, *args, **kwargs):
        raise RuntimeError(f"{self._what} is a stub in the parity venv (qwen_tts's 12 Hz path never uses it)")

    __call__ = _fail

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Missing(f"{self._what}.{name}")
