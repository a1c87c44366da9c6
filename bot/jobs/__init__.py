"""Durable jobs: the store interface (`JobStore`) with SQLite and PostgreSQL backends (`open_store`
picks one from `RLM_DB`), and the worker pool that runs jobs under leases. See model.py."""

from .model import (
    CONTROL_LANE,
    FINAL_STATES,
    IN_FLIGHT,
    RUN_KIND,
    RUN_LANE,
    DuplicateDelivery,
    Heartbeat,
    IfRunActive,
    Job,
    JobLane,
    JobOutcome,
    JobState,
    JobStore,
    NewJob,
    Requeue,
)
from .open import StoreUnavailable, is_postgres_url, open_store, safe_target
from .pool import JobHandler, JobObserver, WorkerPool
from .sql import DEFAULT_LEASE

__all__ = [
    "CONTROL_LANE",
    "DEFAULT_LEASE",
    "FINAL_STATES",
    "IN_FLIGHT",
    "RUN_KIND",
    "RUN_LANE",
    "DuplicateDelivery",
    "Heartbeat",
    "IfRunActive",
    "Job",
    "JobHandler",
    "JobLane",
    "JobObserver",
    "JobOutcome",
    "JobState",
    "JobStore",
    "NewJob",
    "Requeue",
    "StoreUnavailable",
    "WorkerPool",
    "is_postgres_url",
    "open_store",
    "safe_target",
]
