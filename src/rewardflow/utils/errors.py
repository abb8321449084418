"""Errors that carry a message meant for the user: the command line prints them without a
traceback."""

from __future__ import annotations


class LicenseNotAccepted(PermissionError):
    """A model's licence needs the user's explicit acceptance (the message says how to give it)."""
