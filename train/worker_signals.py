"""Loader workers leave stopping to their parent: they ignore SIGTERM and SIGINT.

`systemctl stop`, `timeout` and Ctrl-C signal the whole process group. A worker that died of the
signal would make the DataLoader raise "worker ... is killed by signal" in the parent before the
parent's own handler could save a checkpoint; ignoring it, the workers keep serving until the parent,
having saved its state, shuts them down (or they see it gone and exit).
"""

from __future__ import annotations

import signal


def ignore_stop_signals(worker_id: int) -> None:
    """A DataLoader `worker_init_fn` (module level, so spawned workers can pickle it)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
