"""The result store (MySQL or MariaDB): predictions written by consumers, jobs recorded by the producer.

Use `Store.connect(url)` and the dataclasses below; `grants_for` gives each role's GRANT statements.
"""

from imgsieve.store.db import PredictionRow, Store, StoreUnavailableError
from imgsieve.store.schema import grants_for
from imgsieve.store.summary import JobSummary, StoreStatus

__all__ = ["JobSummary", "PredictionRow", "Store", "StoreStatus", "StoreUnavailableError", "grants_for"]
