"""Dataset bookkeeping: ledger schemas, the Parquet ledger, the dataset folder layout, atomic writes."""

from manifests.ledger import Ledger, LedgerError
from manifests.schema import LEDGERS, STATUS_FAILED, STATUS_OK, STATUS_REJECTED, LedgerSchema

__all__ = ["LEDGERS", "Ledger", "LedgerError", "LedgerSchema", "STATUS_FAILED", "STATUS_OK", "STATUS_REJECTED"]
