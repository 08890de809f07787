"""A ledger row's status, in a module of its own (no pyarrow): worker processes import it cheaply."""

STATUS_OK = "ok"
STATUS_REJECTED = "rejected"
STATUS_FAILED = "failed"
STATUSES = (STATUS_OK, STATUS_REJECTED, STATUS_FAILED)
