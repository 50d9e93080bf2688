"""sealtrail's Python SDK: send audit events to the ingest edge without a Kafka client."""

from .client import Client, QueueFull, Rejection, Stats
from .events import Actor, Change, Event, Evidence, Outcome, Resource, new_ulid

__all__ = [
    "Actor",
    "Change",
    "Client",
    "Event",
    "Evidence",
    "Outcome",
    "QueueFull",
    "Rejection",
    "Resource",
    "Stats",
    "new_ulid",
]
