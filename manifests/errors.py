"""The ledger's error, in a module of its own (no pyarrow), so the CLI's error list imports cheaply."""


class LedgerError(RuntimeError):
    """A ledger file that cannot be read, or was written by an incompatible version of pipe."""
