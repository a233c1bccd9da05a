"""Group commit for the HTTP intake (D49): the files that arrive together are written together.

Each API process keeps one queue. A request whose file is read and checked puts it in the
queue and waits; a writer task takes what has arrived (up to ``max_files``, waiting at most
``max_wait`` seconds after the first), writes it with ``accept_many`` in one transaction, and
only after the commit hands each request its receipt. If that transaction fails, every file of
it is written again alone, so that one file's failure stays its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from vnehr.kit.auth import Subject
from vnehr.kit.db import Database
from vnehr.kit.logging import get_logger
from vnehr.submissions.service import Analysis, IntakeOptions, accept, accept_many

log = get_logger("vnehr.intake")


@dataclass(slots=True)
class _Waiting:
    subject: Subject
    data: bytes
    analysis: Analysis
    options: IntakeOptions
    answer: asyncio.Future[dict[str, Any]]


#: How long the writer waits for a file before it ends (the next file starts it again).
IDLE_SECONDS = 1.0


class IntakeQueue:
    def __init__(self, db: Database, *, max_files: int = 32, max_wait: float = 0.003) -> None:
        self._db = db
        self._max_files = max_files
        self._max_wait = max_wait
        self._queue: asyncio.Queue[_Waiting] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    async def accept(
        self, subject: Subject, data: bytes, analysis: Analysis, options: IntakeOptions
    ) -> dict[str, Any]:
        """The receipt of this file, once the transaction that wrote it has committed;
        ``FileRefused`` when the file is refused whole."""
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_forever())
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Waiting(subject, data, analysis, options, answer))
        # a caller that goes away does not take the write with it: the file is still written
        # and its receipt can be read again with GET /api/v1/submissions/{id}
        return await asyncio.shield(answer)

    async def close(self) -> None:
        """Stop the writer; a file still waiting (none once the server has drained its
        requests) is answered with an error rather than left hanging."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        while not self._queue.empty():
            _answer(self._queue.get_nowait(), RuntimeError("the intake is shutting down"))

    async def _write_forever(self) -> None:
        while True:
            try:  # idle: the writer ends, and the next file starts another (a queue dropped
                # without ``close``, by an app whose shutdown never ran, leaves no task pending)
                first = await asyncio.wait_for(self._queue.get(), IDLE_SECONDS)
            except TimeoutError:
                # (a file put while the wait was being cancelled stays in the queue: taken now;
                # from here to the end nothing else runs, and ``accept`` sees the writer done)
                if self._queue.empty():
                    return
                continue
            batch = [first]
            try:
                if self._queue.qsize() < self._max_files - 1 and self._max_wait > 0:
                    await asyncio.sleep(self._max_wait)  # the others arriving at this moment
                while len(batch) < self._max_files and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                # requests build equal options (same settings): one group, in arrival order
                groups: list[tuple[IntakeOptions, list[_Waiting]]] = []
                for waiting in batch:
                    group = next((g for o, g in groups if o == waiting.options), None)
                    if group is None:
                        groups.append((waiting.options, [waiting]))
                    else:
                        group.append(waiting)
                for options, group in groups:
                    await self._write(group, options)
            except BaseException as exc:
                # never leave a request waiting for an answer that will not come
                for waiting in batch:
                    _answer(waiting, RuntimeError(f"the intake writer stopped: {exc!r}"))
                raise

    async def _write(self, batch: list[_Waiting], options: IntakeOptions) -> None:
        try:
            async with self._db.session() as session:
                results = await accept_many(
                    session, [(w.subject, w.data, w.analysis) for w in batch], options
                )
        except Exception as exc:  # noqa: BLE001 - the batch's failure is retried file by file
            log.warning("intake_batch_failed", files=len(batch), error=type(exc).__name__)
            for waiting in batch:
                await self._write_alone(waiting)
            return
        for waiting, result in zip(batch, results, strict=True):
            _answer(waiting, result)

    async def _write_alone(self, waiting: _Waiting) -> None:
        try:
            async with self._db.session() as session:
                result: dict[str, Any] | Exception = await accept(
                    session, waiting.subject, waiting.data, waiting.analysis, waiting.options
                )
        except Exception as exc:  # noqa: BLE001 - handed to the request that sent the file
            result = exc
        _answer(waiting, result)


def _answer(waiting: _Waiting, result: dict[str, Any] | Exception) -> None:
    if waiting.answer.done():
        return
    if isinstance(result, Exception):
        waiting.answer.set_exception(result)
    else:
        waiting.answer.set_result(result)


__all__ = ["IntakeQueue"]
