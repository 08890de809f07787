"""Per-item functions that misbehave on chosen keys, for the failure-isolation tests.

They run inside the executors' spawned worker processes (which import this module by name), and read
the keys to fail on from environment variables the test sets before the pool starts.
"""

from __future__ import annotations

import os
import signal

from pipeline.extract.io import write_line
from pipeline.extract.opencv_units import OpenCVItem
from pipeline.shard.synthesize import synthesize_in_worker

CRASH_KEY = "PIPE_TEST_CRASH_KEY"
RAISE_KEY = "PIPE_TEST_RAISE_KEY"


def misbehave(key: str) -> None:
    """Kill this worker process (as a segfault or the OOM killer would) or raise, for the chosen keys."""
    if key == os.environ.get(CRASH_KEY):
        os.kill(os.getpid(), signal.SIGKILL)
    if key == os.environ.get(RAISE_KEY):
        raise RuntimeError(f"injected failure for {key[:8]}")


def faulty_write_line(output, context):  # noqa: ANN001, ANN201 - same signature as write_line
    misbehave(output.item.key)
    return write_line(output, context)


def faulty_synthesize(job):  # noqa: ANN001, ANN201 - same signature as synthesize_in_worker
    misbehave(job.key)
    return synthesize_in_worker(job)


class FaultyOpenCVItem(OpenCVItem):
    """`pipe extract`'s CPU per-image function, misbehaving on the chosen keys."""

    def __call__(self, item):  # noqa: ANN001, ANN204
        misbehave(item.key)
        return super().__call__(item)
