"""The publisher's disk spool: prediction events that wait for the broker on local disk.

Append-only segment files of JSON lines, one event a line, named by creation time; a
segment is deleted only after every event in it was acknowledged.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from homeloop.events import PredictionEvent
from homeloop.topics import message_key

Record = tuple[bytes, bytes]  # Kafka key, value
SEGMENT_BYTES = 1 << 20


def decode(lines: list[bytes]) -> tuple[list[Record], int]:
    """Spool lines as records (key from the event, value as written), and how many were bad.

    A bad line is the tail of a write a crash cut short.
    """
    records: list[Record] = []
    corrupt = 0
    for line in lines:
        try:
            records.append((message_key(PredictionEvent.from_bytes(line)), line))
        except (ValidationError, ValueError):
            corrupt += 1
    return records, corrupt


@dataclass
class Segment:
    """A spool segment claimed for replay: its lines, and the lock that keeps it ours."""

    path: Path
    file: IO[bytes]
    lines: list[bytes]
    size: int

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        self.file.close()  # closing drops the flock


class DiskSpool:
    """Append-only segment files of JSON lines, named by creation time (sorted: oldest first).

    Methods do blocking file I/O: call them from a thread (a lock keeps the segment being
    written consistent even if a cancelled caller's thread is still running). The writer holds
    an exclusive flock on the segment it appends to and a replayer on the segment it reads, so
    two processes sharing a data dir neither replay a file being written nor the same file twice.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._current: IO[bytes] | None = None
        self._current_size = 0
        self._last_ns = 0

    def scan(self) -> tuple[int, int]:
        """Events and bytes already in the spool (an earlier process's, after a crash)."""
        self.root.mkdir(parents=True, exist_ok=True)
        events = size = 0
        for path in self._segments():
            with contextlib.suppress(FileNotFoundError):
                data = path.read_bytes()
                events += len(split_lines(data))
                size += len(data)
        return events, size

    def append(self, lines: list[bytes]) -> None:
        data = b"".join(line + b"\n" for line in lines)
        with self._lock:
            if self._current is None or self._current_size >= SEGMENT_BYTES:
                self._open_segment()
            assert self._current is not None
            self._current.write(data)
            self._current.flush()  # in the OS's hands: survives a crash of this process
            self._current_size += len(data)

    def seal(self) -> None:
        """Close the segment being written, so it can be replayed; the next append starts one."""
        with self._lock:
            self._close_current()

    def claim_oldest(self) -> Segment | None:
        """The oldest segment no one else holds, read and locked; None if there is none."""
        for path in self._segments():
            try:
                file = path.open("rb")
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.close()
                continue
            if os.fstat(file.fileno()).st_nlink == 0:  # replayed and deleted meanwhile
                file.close()
                continue
            data = file.read()
            return Segment(path, file, split_lines(data), len(data))
        return None

    def _segments(self) -> list[Path]:
        return sorted(self.root.glob("*.jsonl"))

    def _close_current(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None

    def _open_segment(self) -> None:
        """A new segment, locked before it gets its ``.jsonl`` name: created under that name,
        another worker's replayer could claim it between the open and the lock (the lock
        then failed with EAGAIN and the write's events were dropped)."""
        self._close_current()
        self.root.mkdir(parents=True, exist_ok=True)
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        path = self.root / f"{self._last_ns:020d}-{os.getpid()}.jsonl"
        staging = path.with_suffix(".new")
        self._current = staging.open("ab")
        fcntl.flock(self._current, fcntl.LOCK_EX | fcntl.LOCK_NB)
        staging.rename(path)  # the lock stays with the open file
        self._current_size = 0


def split_lines(data: bytes) -> list[bytes]:
    return [line for line in data.split(b"\n") if line]
