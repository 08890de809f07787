"""The exception a per-sample prepare step raises to reject its input for a reason (`manifests.reasons`)."""

from __future__ import annotations


class Rejected(Exception):
    """Raised inside the per-sample function: this input is rejected for `reason`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
