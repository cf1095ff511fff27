"""A small process-safe key-value store on SQLite, shared by the LM-call and embedding caches.

* stdlib :mod:`sqlite3` in WAL mode with a busy timeout, so several processes (and threads) can
  read and write one file at once without losing entries;
* values are ``TEXT`` (JSON) or ``BLOB`` (raw bytes, e.g. float32 vectors), never pickle;
* every file records what it holds (``format`` in a ``meta`` table), so pointing one cache at
  another cache's file, or at a damaged file, gives a :class:`CacheCorruptedError` that names the
  file and says how to rebuild it (:meth:`SQLiteStore.rebuild`, or delete the file).

Connections are kept per thread. SQLite forbids carrying a connection across ``fork()`` (the child
inherits the parent's lock bookkeeping but not its locks, so its own connections can lose
writes), so every open connection is closed just before this process forks (an
``os.register_at_fork`` hook, which first waits for the database operation in flight) and
reopened on next use, in the parent and the child alike.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 500  # keys per SELECT … IN (…); well below SQLite's host-parameter limit
BUSY_TIMEOUT_S = 60.0


class _ForkGuard:
    """Tracks open connections; closes them all before a fork, with no operation in flight."""

    def __init__(self) -> None:
        self.lock = threading.RLock()  # held by every database operation of this process
        self.generation = 0
        self.conns: list[sqlite3.Connection] = []

    def before_fork(self) -> None:
        self.lock.acquire()
        for conn in self.conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self.conns.clear()
        self.generation += 1

    def after_fork_in_parent(self) -> None:
        self.lock.release()

    def after_fork_in_child(self) -> None:
        self.lock = threading.RLock()


_GUARD = _ForkGuard()
os.register_at_fork(
    before=_GUARD.before_fork,
    after_in_parent=_GUARD.after_fork_in_parent,
    after_in_child=_GUARD.after_fork_in_child,
)


class CacheCorruptedError(RuntimeError):
    """A cache file cannot be read: damaged, not SQLite, or another kind of cache."""

    def __init__(self, path: Path, what: str, detail: str, rebuild_call: str = "SQLiteStore.rebuild") -> None:
        self.path = path
        super().__init__(
            f"{what} {path} is unreadable ({detail}). Rebuild it with `{rebuild_call}({str(path)!r})` "
            f"(readable entries are kept, the damaged file is moved aside), or delete {path.name} and "
            f"its -wal/-shm files; lost entries are simply recomputed."
        )


@dataclass(frozen=True)
class RebuildReport:
    """What :meth:`SQLiteStore.rebuild` did."""

    path: Path
    salvaged: int
    moved_to: Path | None


class SQLiteStore:
    """``key (TEXT) -> value (TEXT or BLOB)`` in one SQLite file, safe across processes.

    ``fmt`` names what the file holds (e.g. ``"personalign-lm-calls/1"``); opening a file that
    holds something else is an error. ``what`` is the human name used in error messages and
    ``rebuild_call`` the function they tell the user to run.
    """

    def __init__(
        self, path: str | Path, fmt: str, what: str = "cache", rebuild_call: str = "SQLiteStore.rebuild"
    ) -> None:
        self.path = Path(path).expanduser()
        self.fmt = fmt
        self.what = what
        self.rebuild_call = rebuild_call
        self._local = threading.local()
        self._init_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _GUARD.lock:
            self._connect()  # fail fast on a damaged or foreign file

    # -- connections ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection (call with ``_GUARD.lock`` held)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.generation == _GUARD.generation:
            return conn
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            with self._init_lock:
                self._ensure_schema(conn)
        except sqlite3.DatabaseError as err:
            raise self.corrupted(str(err)) from err
        _GUARD.conns.append(conn)
        self._local.conn, self._local.generation = conn, _GUARD.generation
        return conn

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value NOT NULL, "
                "created REAL NOT NULL) WITHOUT ROWID"
            )
            row = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta (key, value) VALUES ('format', ?)", (self.fmt,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if row is not None and row[0] != self.fmt:
            raise sqlite3.DatabaseError(f"it holds {row[0]!r}, expected {self.fmt!r}")

    def corrupted(self, detail: str) -> CacheCorruptedError:
        """The error to raise when this file turns out unreadable."""
        return CacheCorruptedError(self.path, self.what, detail, self.rebuild_call)

    def close(self) -> None:
        """Close this thread's connection (it is reopened if the store is used again)."""
        with _GUARD.lock:
            conn = getattr(self._local, "conn", None)
            if conn is not None and self._local.generation == _GUARD.generation:
                conn.close()
                _GUARD.conns.remove(conn)
            self._local.conn = None

    # -- reads and writes ----------------------------------------------------------------------

    def get_many(self, keys: Sequence[str]) -> dict[str, str | bytes]:
        """Values for those ``keys`` that are stored (missing keys are absent from the result)."""
        out: dict[str, str | bytes] = {}
        unique = list(dict.fromkeys(keys))
        with _GUARD.lock:
            conn = self._connect()
            try:
                for i in range(0, len(unique), _CHUNK):
                    chunk = unique[i : i + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows = conn.execute(f"SELECT key, value FROM entries WHERE key IN ({marks})", chunk)
                    out.update(rows.fetchall())
            except sqlite3.DatabaseError as err:
                raise self.corrupted(str(err)) from err
        return out

    def put_many(self, items: Iterable[tuple[str, str | bytes]]) -> None:
        """Store ``(key, value)`` pairs in one transaction; an existing key keeps its value."""
        now = time.time()
        rows = [(k, v, now) for k, v in items]
        if not rows:
            return
        with _GUARD.lock:
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(
                        "INSERT OR IGNORE INTO entries (key, value, created) VALUES (?, ?, ?)", rows
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.DatabaseError as err:
                raise self.corrupted(str(err)) from err

    def _query(self, sql: str) -> list[tuple]:
        with _GUARD.lock:
            try:
                return self._connect().execute(sql).fetchall()
            except sqlite3.DatabaseError as err:
                raise self.corrupted(str(err)) from err

    def __len__(self) -> int:
        return self._query("SELECT COUNT(*) FROM entries")[0][0]

    def keys(self) -> list[str]:
        """Every stored key."""
        return [k for (k,) in self._query("SELECT key FROM entries")]

    def clear(self) -> None:
        """Delete every entry."""
        self._query("DELETE FROM entries")

    # -- recovery ------------------------------------------------------------------------------

    @staticmethod
    def rebuild(
        path: str | Path, fmt: str | None = None, valid: Callable[[object], bool] | None = None
    ) -> RebuildReport:
        """Replace a damaged cache file by a fresh one, keeping the entries that can still be read.

        The damaged file (and its ``-wal``/``-shm`` files) is renamed to ``<name>.corrupt-<time>``;
        the new file gets the readable entries (none if the file is not SQLite at all) for which
        ``valid(value)`` holds, if given. ``fmt`` is the format of the new file (default: the old
        file's, if readable). No other process may use the cache while it is rebuilt.
        """
        path = Path(path).expanduser()
        if not path.exists():
            return RebuildReport(path, 0, None)
        salvaged: list[tuple[str, object, float]] = []
        old_fmt = None
        try:
            src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                row = src.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
                old_fmt = row[0] if row else None
                for entry in src.execute("SELECT key, value, created FROM entries"):
                    salvaged.append(entry)
            finally:
                src.close()
        except sqlite3.DatabaseError:
            pass  # keep what was read before the damage
        if fmt is not None and old_fmt is not None and old_fmt != fmt:
            salvaged = []  # a foreign file: its entries mean nothing to this cache
        fmt = fmt or old_fmt
        if fmt is None:
            raise ValueError(f"cannot tell what {path} held; pass fmt= to rebuild it")
        moved = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, moved)
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                os.replace(side, moved.with_name(moved.name + suffix))
        if valid is not None:
            salvaged = [row for row in salvaged if valid(row[1])]
        store = SQLiteStore(path, fmt)
        store.put_many((k, v) for k, v, _ in salvaged)  # type: ignore[misc]
        store.close()
        return RebuildReport(path, len(salvaged), moved)
