"""Worker processes that end with their parent: a `kill -9` of `pipe` (the OOM killer) must not leave its
spawned workers running (~110 MB each) with no one to hand their results to."""

from __future__ import annotations

import os
import threading
import time

PARENT_CHECK_SECONDS = 0.5


def end_with_parent(parent_pid: int) -> None:
    """End this worker process when its parent dies (`kill -9` of `pipe`, the OOM killer): a daemon thread
    watches the parent pid; an orphan is re-parented, so its parent pid changes.

    Not prctl(PR_SET_PDEATHSIG): it fires when the parent *thread* that started the worker exits, and the
    pool starts (and restarts) workers from whichever thread submits, so it would kill healthy workers.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)  # nothing to save: the parent that would record this worker's results is gone

    if os.getppid() != parent_pid:  # the parent died while this worker started
        os._exit(1)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
