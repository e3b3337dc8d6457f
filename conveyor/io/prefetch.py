"""Read ahead on a background thread, so parsing the next batch overlaps with the work on
this one (Arrow releases the GIL while it parses, hashes and encodes)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items`` in order while a thread produces up to ``depth`` ahead. An exception
    raised while producing is raised here; closing the iterator stops the thread."""
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put((item,), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_DONE)
        except BaseException as exc:  # handed to the consumer
            slots.put(exc)

    thread = threading.Thread(target=produce, name="conveyor-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            got = slots.get()
            if got is _DONE:
                return
            if isinstance(got, BaseException):
                raise got
            yield got[0]  # type: ignore[index]
    finally:
        stop.set()
        while thread.is_alive():
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
