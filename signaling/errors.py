"""Errors a request can end with: a machine-readable code and a message for people."""

from __future__ import annotations


class RequestError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
