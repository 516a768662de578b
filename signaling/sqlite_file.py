"""One SQLite file served by one thread of its own: the store's (store.py) and the analytics
event log's (events.py) each open theirs this way, so neither holds the other up and the event
loop never waits on the disk."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


class SqliteFile:
    """`_conn()` (on the thread) opens the file at first use, in WAL mode, with `SCHEMAS`
    applied; `_run(fn)` runs `fn` on the thread. `ROWS`: the row factory (None: tuples)."""

    SCHEMAS: tuple[str, ...] = ()
    ROWS: Any = None

    def __init__(self, path: str | Path, thread_name: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            if self.ROWS is not None:
                self._db.row_factory = self.ROWS
            self._db.execute("PRAGMA journal_mode=WAL")
            for schema in self.SCHEMAS:
                self._db.executescript(schema)
        return self._db

    async def open(self) -> None:
        await self._run(self._conn)

    async def close(self) -> None:
        def work() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(work)
        self._executor.shutdown(wait=True)
