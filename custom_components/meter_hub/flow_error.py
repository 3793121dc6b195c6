"""The one error type of the config flow's steps: a form error with its translation key."""

from __future__ import annotations


class FlowError(Exception):
    """Why a step shows its form again, with the error's key and placeholders.

    ``key`` names the text in strings.json (``config.error``), ``placeholders`` fill it. The
    probing helpers raise it; each step catches it once and shows its form with the error.
    """

    def __init__(self, key: str, **placeholders: str) -> None:
        """Say which error the form shows, and with which placeholders."""
        super().__init__(key)
        self.key = key
        self.placeholders = placeholders
