"""The marks of live delivery rounds on a SQLite file (D162).

A SQLite round's claim is a time written on its events (D129), and writing needs the file's one
write lock: while another writer holds it past the claim's end, the round can neither renew its
claim nor record its answers, and the first worker to get the lock afterwards could take the
events and send the files again. So a round also leaves a mark beside the file: a small file
naming the events it claimed, locked (``flock``) by the round's process for as long as the round
runs. The kernel lets that lock go when the process ends, however it ends; a mark nobody holds
is a dead round's. Another round's claim skips the events of marks still held, whatever their
time says, and removes the dead ones. Marks are taken, read and removed only while the writer
holds the file's write lock (the claims), except the owner's removal at the round's end, which
only ever makes a reader skip an event once more.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Collection
from pathlib import Path

SUFFIX = ".round"


def folder_of(database: str | None) -> Path | None:
    """Where the rounds on the SQLite file ``database`` leave their marks; None for a database
    in memory (one process: nobody else to tell)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(f"{database}-rounds")


class RoundMark:
    """A live round's mark: its events' ids, in a file its process holds locked."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    @classmethod
    def take(cls, folder: Path, event_ids: Collection[int]) -> RoundMark:
        """Mark these events as a live round's (inside the transaction that claims them)."""
        folder.mkdir(exist_ok=True)
        path = folder / f"{uuid.uuid4().hex}{SUFFIX}"
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, " ".join(str(event_id) for event_id in event_ids).encode())
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        return cls(path, fd)

    def drop(self) -> None:
        """The round has ended: its events are anyone's again (when their time says so)."""
        if self._fd < 0:
            return
        self.path.unlink(missing_ok=True)  # while still locked: nobody takes it for a dead one
        os.close(self._fd)
        self._fd = -1


def held(folder: Path | None) -> set[int]:
    """The events claimed by rounds that are still running; the marks of dead rounds are
    removed. Called while holding the file's write lock."""
    events: set[int] = set()
    if folder is None:
        return events
    try:
        entries = [entry for entry in os.scandir(folder) if entry.name.endswith(SUFFIX)]
    except FileNotFoundError:
        return events
    for entry in entries:
        try:
            fd = os.open(entry.path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # its round ended meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its round runs
                data = os.pread(fd, os.fstat(fd).st_size, 0)
                events.update(int(part) for part in data.split())
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)  # its process ended without removing it
        finally:
            os.close(fd)
    return events
