"""Errors whose message is the whole story: it names the setting or file and what to do."""
from __future__ import annotations


def one_line(err: BaseException, width: int = 300) -> str:
    """"TypeName: the first non-blank line of its message" (at most ``width`` characters), for a
    table cell or a warning; the name alone for an empty message (``MemoryError()``, whose
    ``splitlines()[0]`` raised IndexError in the very handler meant to report it)."""
    line = next((line.strip() for line in str(err).splitlines() if line.strip()), "")[:width]  # "\nCUDA error..."
    return f"{type(err).__name__}: {line}" if line else type(err).__name__


class Explained(Exception):
    """Mixin: IPython (JupyterLab, Colab, papermill) shows the message instead of the traceback,
    which would bury the instructions under library internals."""

    def _render_traceback_(self) -> list[str]:
        return f"{type(self).__name__}: {self}".splitlines()


class SettingsError(Explained, ValueError):
    """A notebook parameter (or command-line option) that cannot work."""


class TrainingDiverged(Explained, FloatingPointError):
    """A training whose loss turned NaN or infinite, stopped (``fit(stop_if_diverged=True)``): its
    message says what to change, which the traceback through ``fit`` buried."""
