"""Errors a request can end with: a machine-readable code and a message for people."""

from __future__ import annotations

from typing import Any


class RequestError(Exception):
    def __init__(self, code: str, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data  # extra detail for the client, e.g. the current notes on a conflict
