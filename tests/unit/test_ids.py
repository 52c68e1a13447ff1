"""UUIDv7: version and variant bits, and ids that sort by creation time."""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from mailer.ids import uuid7


def test_version_variant_and_timestamp() -> None:
    before = time.time_ns() // 1_000_000
    made = uuid7()
    after = time.time_ns() // 1_000_000
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after


def test_ids_are_unique_and_ordered_across_milliseconds() -> None:
    first = [uuid7() for _ in range(1000)]
    time.sleep(0.002)
    second = [uuid7() for _ in range(1000)]
    assert len(set(first + second)) == 2000
    assert max(first) < min(second)


def test_ids_from_many_threads_are_unique() -> None:
    # The random bits come from a shared pool: no two threads may take the same bytes.
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: [uuid7() for _ in range(2000)], range(8)))
    every = [i for ids in made for i in ids]
    assert len(set(every)) == len(every) == 16_000


def test_a_forked_child_never_hands_out_its_parents_next_ids() -> None:
    uuid7()  # the pool now holds bytes the parent has not used yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, b"".join(uuid7().bytes for _ in range(100)))
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    child = {data[i : i + 16][6:] for i in range(0, len(data), 16)}
    parent = {uuid7().bytes[6:] for _ in range(100)}
    assert len(child) == 100 and not child & parent
