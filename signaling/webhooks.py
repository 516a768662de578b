"""Webhooks to the portal: JSON bodies signed with HMAC-SHA256, retried with backoff.

Headers: `X-Mediaserver-Event`, `X-Mediaserver-Timestamp` (seconds) and
`X-Mediaserver-Signature: sha256=<hex of HMAC(secret, timestamp + "." + body)>`, so a receiver
can refuse replays of old deliveries as well as forgeries.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import aiohttp

log = logging.getLogger(__name__)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class Webhooks:
    def __init__(self, url: str, secret: str, attempts: int = 6, first_delay: float = 1.0,
                 timeout: float = 10.0) -> None:
        self.url = url
        self.secret = secret
        self.attempts = attempts
        self.first_delay = first_delay
        self.timeout = timeout
        self._tasks: set[asyncio.Task] = set()
        self.delivered = 0
        self.failed = 0

    def send(self, event: str, data: dict[str, Any]) -> None:
        """Deliver in the background; the caller never waits on the portal."""
        if not self.url:
            return
        task = asyncio.create_task(self._deliver(event, data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, event: str, data: dict[str, Any]) -> None:
        body = json.dumps({"event": event, "data": data}, separators=(",", ":")).encode()
        delay = self.first_delay
        async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
            for attempt in range(1, self.attempts + 1):
                timestamp = str(int(time.time()))
                headers = {"Content-Type": "application/json", "X-Mediaserver-Event": event,
                           "X-Mediaserver-Timestamp": timestamp,
                           "X-Mediaserver-Signature": sign(self.secret, timestamp, body)}
                try:
                    async with session.post(self.url, data=body, headers=headers) as r:
                        if 200 <= r.status < 300:
                            self.delivered += 1
                            return
                        log.warning("webhook %s: HTTP %d (attempt %d)", event, r.status, attempt)
                except (TimeoutError, aiohttp.ClientError) as exc:
                    log.warning("webhook %s: %s (attempt %d)", event, exc, attempt)
                if attempt < self.attempts:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 300)  # exponential backoff, capped at 5 minutes
        self.failed += 1

    async def drain(self) -> None:
        """Wait for deliveries in flight (used at shutdown and by tests)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
