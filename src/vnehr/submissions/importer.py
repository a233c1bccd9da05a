"""`vnehr import`: a folder of GIAMDINHHS files loaded as their facilities would send them.

Files are read and checked in a pool of processes (one per core: parsing is most of the work)
while the previous batch is written in one transaction with ``accept_many`` (COPY on
PostgreSQL). Resumable: a file whose bytes were received before is skipped (D48), unless a
visit of it was rejected (checked again) or it was stored in test mode and its facility has been
connected since (loaded for real).
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vnehr import catalogs, papers
from vnehr.kit.auth import Subject
from vnehr.kit.clock import today_in_vietnam
from vnehr.kit.db import Database
from vnehr.kit.errors import VnehrError
from vnehr.kit.logging import configured, start_process
from vnehr.submissions import errors
from vnehr.submissions.rules import CodeBook
from vnehr.submissions.service import (
    Analysis,
    IntakeOptions,
    accept_many,
    prepare,
    received_digests,
)
from vnehr.submissions.xmlio import Limits


@dataclass
class Totals:
    files: int = 0
    skipped: int = 0
    refused: int = 0
    visits: int = 0
    accepted: int = 0
    rejected: int = 0
    #: "name: code message" for a file refused whole; "name HOSO n (MA_LK): codes" for a
    #: rejected visit
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"files {self.files}, skipped {self.skipped}, refused {self.refused}, "
            f"visits {self.visits}, accepted {self.accepted}, rejected {self.rejected}"
        )

    @property
    def exit_code(self) -> int:
        """As ``vnehr validate``'s: 0 all accepted, 1 a visit rejected, 2 a file refused."""
        return 2 if self.refused else 1 if self.rejected else 0


def visit_files(folder: Path) -> list[Path]:
    """The ``*.xml`` files (any case) in a folder and its subfolders, regular files only, in
    name order (a folder named ``x.xml``, a broken link: not files to read)."""
    found = []
    for path in folder.rglob("*"):
        if path.suffix.lower() == ".xml" and path.is_file():
            found.append(path)
    return sorted(found)


def read_file(path: Path, limits: Limits) -> bytes:
    """A file's bytes, or ``FileRefused``: unreadable (gone, a folder, no permission), or
    larger than the cap (told before reading it: a 3 GB file is not read into memory)."""
    shown = os.fsencode(path).decode("utf-8", "backslashreplace")
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limits.max_bytes:
                raise errors.TooLarge(what=shown, size=size, limit=limits.max_bytes)
            data = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        raise errors.FileUnreadable(path=shown, reason=exc.strerror or type(exc).__name__) from exc
    if len(data) > limits.max_bytes:  # (a pipe or a device: no size to tell beforehand)
        raise errors.TooLarge(what=shown, size=len(data), limit=limits.max_bytes)
    return data


@dataclass(slots=True)
class _Read:
    path: str
    data: bytes
    sha256: str
    analysis: Analysis | None
    refused: tuple[str, dict[str, str]] | None  # (code, messages) of a file refused whole


#: Files per task given to a pool process.
CHUNK = 10
_codes: CodeBook | None = None
_limits: Limits | None = None


def _start(codes: CodeBook, limits: Limits, parent: int) -> None:
    # one catalogue copy per pool process, given once when it starts
    global _codes, _limits
    _codes, _limits = codes, limits
    _end_with(parent)


def _end_with(parent: int) -> None:
    """A pool process ends when the import does, even killed (SIGKILL leaves no time to stop
    the pool): Linux sends it SIGTERM when its parent dies."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # (the parent died before the line above)
        os._exit(1)


def _read(path: str) -> _Read:
    if _codes is None or _limits is None:
        raise RuntimeError("the pool process was not started with the catalogues")
    try:
        data = read_file(Path(path), _limits)
    except VnehrError as exc:  # unreadable, or too large to read
        return _Read(path, b"", "", None, (exc.code, exc.messages()))
    try:
        analysis = prepare(data, codes=_codes, limits=_limits)
    except VnehrError as exc:
        digest = hashlib.sha256(data).hexdigest()
        return _Read(path, data, digest, None, (exc.code, exc.messages()))
    return _Read(path, data, analysis.raw_sha256, analysis, None)


def _read_many(paths: list[str]) -> list[_Read]:
    # a few files per task: one message each way instead of one per file
    return [_read(path) for path in paths]


def _start_method() -> multiprocessing.context.BaseContext:
    """Fork the pool when this process runs a single thread (PostgreSQL's driver starts none):
    the workers begin at once with the catalogue copy already in memory, instead of importing
    everything and unpickling the catalogues (about 1.5 s each). With any other thread running
    (SQLite's driver runs one per connection) they are spawned: a fork copies locks that
    another thread may hold."""
    tasks = Path("/proc/self/task")
    alone = threading.active_count() == 1 and tasks.is_dir() and len(list(tasks.iterdir())) == 1
    return multiprocessing.get_context("fork" if alone else "spawn")


def _batches(paths: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(paths), size):
        yield paths[start : start + size]


def _importer(facility_code: str) -> Subject:
    return Subject(
        kind="facility_system",
        id="import",
        name="vnehr import",
        scopes=frozenset({"submission.write"}),
        facility_code=facility_code,
    )


async def import_folder(
    db: Database,
    paths: list[Path],
    options: IntakeOptions,
    *,
    batch_size: int = 200,
    processes: int | None = None,
    progress: Callable[[int], None] | None = None,
    language: str = "vi",
) -> Totals:
    """Import these files; ``progress`` is told how many files each finished batch held;
    the problems are told in ``language`` (vi or en)."""
    totals = Totals()
    async with db.read_session() as session:
        codes = await catalogs.codebook(session)
    loop = asyncio.get_running_loop()
    workers = processes or os.cpu_count() or 1
    context = _start_method()
    start: tuple[Any, ...] = (codes, options.limits, os.getpid())
    initializer: Callable[..., None] = _start
    if context.get_start_method() == "spawn":
        # logging first: a spawned process imports the intake afresh, which may log, and
        # structlog prints to stdout until configured (into the command's output). A forked
        # one has the parent's logging, and the catalogues without a copy.
        initializer = start_process
        start = (configured(), f"{__name__}:_start", pickle.dumps(start))
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=initializer, initargs=start
    ) as pool:
        batches = _batches(paths, batch_size)

        def submit(batch: list[Path]) -> list[asyncio.Future[list[_Read]]]:
            names = [str(p) for p in batch]
            return [
                loop.run_in_executor(pool, _read_many, names[start : start + CHUNK])
                for start in range(0, len(names), CHUNK)
            ]

        pending = [submit(b) for b in (next(batches, None), next(batches, None)) if b]
        if options.papers is not None:
            # while the pool reads the first files: the holiday calendar that re-exam and
            # sick-leave papers count working days with (0.2 s, else in the first write)
            papers.load_calendar(today_in_vietnam())
        while pending:
            current = pending.pop(0)
            following = next(batches, None)
            if following:  # read ahead: the pool parses while this batch is written
                pending.append(submit(following))
            read = [item for chunk in await asyncio.gather(*current) for item in chunk]
            await _write(db, read, options, totals, language)
            if progress is not None:
                progress(len(read))
    return totals


async def _write(
    db: Database, read: list[_Read], options: IntakeOptions, totals: Totals, language: str
) -> None:
    async with db.session() as session:
        received = await received_digests(session, [r.sha256 for r in read])
        files: list[tuple[Subject, bytes, Analysis]] = []
        names: list[str] = []
        seen: set[str] = set()
        for item in read:
            if item.sha256 and (item.sha256 in received or item.sha256 in seen):
                totals.skipped += 1
                continue
            seen.add(item.sha256)
            if item.analysis is None:
                code, messages = item.refused or ("-", {})
                totals.refused += 1
                totals.problems.append(
                    f"{Path(item.path).name}: {code} {messages.get(language, '-')}"
                )
                continue
            files.append((_importer(item.analysis.facility_code), item.data, item.analysis))
            names.append(Path(item.path).name)
        for name, result in zip(names, await accept_many(session, files, options), strict=True):
            if isinstance(result, errors.FileRefused):
                totals.refused += 1
                totals.problems.append(f"{name}: {result.code} {result.messages()[language]}")
                continue
            totals.files += 1
            totals.visits += len(result["visits"])
            for visit in result["visits"]:
                if visit["status"] != "rejected":
                    totals.accepted += 1
                    continue
                totals.rejected += 1
                codes = sorted({i["code"] for i in visit["issues"] if i["severity"] == "error"})
                totals.problems.append(
                    f"{name} HOSO {visit['index']} ({visit['visit_key'] or '-'}): "
                    + " ".join(codes)
                )


__all__ = ["Totals", "import_folder", "read_file", "visit_files"]
