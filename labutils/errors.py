"""Errors whose message is the whole story: it names the setting or file and what to do."""
from __future__ import annotations


class Explained(Exception):
    """Mixin: IPython (JupyterLab, Colab, papermill) shows the message instead of the traceback,
    which would bury the instructions under library internals."""

    def _render_traceback_(self) -> list[str]:
        return f"{type(self).__name__}: {self}".splitlines()


class SettingsError(Explained, ValueError):
    """A notebook parameter (or command-line option) that cannot work."""
