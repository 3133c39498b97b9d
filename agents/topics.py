"""Topic names and their roles: one place that says which stream goes where."""

from __future__ import annotations

from pipeline.outputs import ALERTS, CREDIT_SCORES, LIMIT_ADJUSTMENTS, SCORES
from pipeline.timeutil import DAY

__all__ = ["DEAD_LETTER", "INPUT_TOPICS", "OUTPUT_TOPICS", "REPLICATED_RETENTION_MS",
           "REPLICATED_TOPICS", "TOPIC_OF_EVENT_TYPE"]

#: Input event type -> topic (before the configured prefix). Events of equal time are applied
#: in this order, so a label released at the time of a purchase is known to it, as in a
#: history (``pipeline.adapters.read_fdh``) and in the merchant replica.
TOPIC_OF_EVENT_TYPE = {
    "label": "labels",
    "transaction": "transactions",
    "repayment": "repayments",
    "statement": "statements",
    "decision": "decisions",
}
INPUT_TOPICS = tuple(TOPIC_OF_EVENT_TYPE.values())
DEAD_LETTER = "dead-letter"
OUTPUT_TOPICS = (ALERTS, LIMIT_ADJUSTMENTS, SCORES, CREDIT_SCORES, DEAD_LETTER)
#: Read whole by every worker's merchant replica (agents.merchant_feed), which re-reads them
#: after a restart: they must keep the longest merchant window plus the label delay (37 days).
REPLICATED_TOPICS = ("transactions", "labels")
REPLICATED_RETENTION_MS = 40 * DAY // 1000
