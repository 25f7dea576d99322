"""In-memory stand-ins behind the same ports as the real adapters, for unit tests.

The contract suite (tests/contract) runs each of them and its real adapter through the same tests.
"""

from tests.fakes.merchant import TODAY, FakeMerchant, cny, sample_products, usd
from tests.fakes.services import FakeWorkflow, RecordingNotifier, StaticKeySource
from tests.fakes.storage import (
    InMemoryApprovalStore,
    InMemoryAuditRecords,
    InMemoryGoalStore,
    InMemoryOrderCounters,
    StaleApprovals,
)

__all__ = [
    "TODAY",
    "FakeMerchant",
    "FakeWorkflow",
    "InMemoryApprovalStore",
    "InMemoryAuditRecords",
    "InMemoryGoalStore",
    "InMemoryOrderCounters",
    "RecordingNotifier",
    "StaleApprovals",
    "StaticKeySource",
    "cny",
    "sample_products",
    "usd",
]
