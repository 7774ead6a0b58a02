"""The member process's garbage collector settings: full collections stall the leader.

Measured (issue 17, 120 s of the telemetry bench's 64-client puts, gc callbacks timing
each collection on the leader): a generation-2 collection ran every ~10 s, took 30-150 ms
on the shared box, and freed nothing (collected=0); one of them held the loop long
enough that two heartbeats left more than 2 intervals apart. A full collection scans
every tracked object again: the modules, classes and descriptors built at start, and the
Raft log's entries kept until the next snapshot. Their growth is what makes one due
(Python runs it when the survivors pending since the last one reach 25% of the old
generation), so with Python's young threshold of 700 it came every few seconds of load.

So, once the member serves:
* `gc.freeze()`: what start-up built moves to the permanent generation and is never
  scanned again (it lives as long as the process anyway);
* thresholds of 10,000 / 5 / 100 (Python: 700 / 10 / 10): a request's objects are freed
  by reference counting long before 10,000 net new tracked objects, so what a young
  collection scans is what lives on (the Raft log's entries until the next snapshot,
  and a tuple each). A collection's pause grows with what it scans: measured on the
  leader under the same load (the loop watchdog's gc callbacks, the collecting
  thread's CPU), a young threshold of 50,000 scanned ~60,000 objects in 17-25 ms, and
  the generation-1 collection every 10th of those would scan up to ten times that;
  10,000 / 5 scans ~3 ms (at most 4.6) per young and 15-17 ms per generation-1
  collection. Every surviving object is scanned once per generation either way, so the
  CPU spent is the same, in pauses 5 times shorter. A full collection stays as rare as
  before (after 10,000 x 5 x 100 = 5 million net new objects, as 50,000 x 10 x 10), and
  still frees cyclic garbage that outlived the young generations.
Nothing here hides a stall from the heartbeat detector: the collections that remain
are timed like any other work on the loop.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

YOUNG_THRESHOLD = 10_000
OLDER_THRESHOLDS = (5, 100)  # generation 1 after 5 young collections; full ones rare


def tune_after_start() -> None:
    """Freeze the start-up heap and raise the young threshold (idempotent)."""
    # No collection first: a full one here would delay the first client request (restart
    # time); what start-up left as cyclic garbage is small and stays in the frozen heap.
    gc.freeze()  # O(1): the generations' lists are spliced onto the permanent one
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
    if log.isEnabledFor(logging.DEBUG):  # get_freeze_count walks every frozen object
        log.debug(
            "garbage collector tuned",
            extra={"fields": {"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold()}},
        )
