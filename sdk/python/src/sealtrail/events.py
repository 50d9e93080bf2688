"""Audit events in the shape of sealtrail's Avro contract (schemas/audit-event.avsc)."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid(now_ms: Optional[int] = None) -> str:
    """A ULID: 48 bits of milliseconds, then 80 random bits, in Crockford base32."""
    millis = int(time.time() * 1000) if now_ms is None else now_ms
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


@dataclass
class Actor:
    id: str
    type: str = "UNKNOWN"
    display_name: Optional[str] = None
    authority: Optional[str] = None
    on_behalf_of: Optional[str] = None


@dataclass
class Resource:
    type: str
    id: str
    path: Optional[str] = None


@dataclass
class Outcome:
    status: str = "SUCCESS"
    reason_code: Optional[str] = None
    reason_text: Optional[str] = None


@dataclass
class Evidence:
    kind: str
    uri: str
    sha256: Optional[str] = None


@dataclass
class Change:
    field: str
    before: Optional[str] = None
    after: Optional[str] = None


@dataclass
class Event:
    """One audit event. `event_id`, `occurred_at` and `idempotency_key` are filled in when the
    event is emitted, if left empty: a retry then carries the same key, and sealtrail seals it
    once."""

    action: str
    actor: Actor
    resource: Resource
    outcome: Outcome = field(default_factory=Outcome)
    tenant_id: Optional[str] = None
    event_id: Optional[str] = None
    occurred_at: Optional[int] = None
    idempotency_key: Optional[str] = None
    correlation_id: Optional[str] = None
    causation_id: Optional[str] = None
    trace_id: Optional[str] = None
    span_id: Optional[str] = None
    policy_version: Optional[str] = None
    session_id: Optional[str] = None
    evidence: List[Evidence] = field(default_factory=list)
    changes: List[Change] = field(default_factory=list)
    attributes: Dict[str, str] = field(default_factory=dict)

    def complete(self, tenant: str) -> "Event":
        """Fills what the producer left empty: tenant, id, time and idempotency key."""
        self.tenant_id = self.tenant_id or tenant
        self.occurred_at = self.occurred_at if self.occurred_at is not None else int(time.time() * 1000)
        self.event_id = self.event_id or new_ulid(self.occurred_at)
        self.idempotency_key = self.idempotency_key or str(uuid.uuid4())
        return self

    def to_json(self) -> Dict[str, Any]:
        """The event as the ingest edge reads it."""

        def drop_none(values: Dict[str, Any]) -> Dict[str, Any]:
            return {key: value for key, value in values.items() if value is not None}

        return drop_none(
            {
                "event_id": self.event_id,
                "tenant_id": self.tenant_id,
                "occurred_at": self.occurred_at,
                "action": self.action,
                "actor": drop_none(vars(self.actor).copy()),
                "resource": drop_none(vars(self.resource).copy()),
                "outcome": drop_none(vars(self.outcome).copy()),
                "correlation_id": self.correlation_id,
                "causation_id": self.causation_id,
                "trace_id": self.trace_id,
                "span_id": self.span_id,
                "idempotency_key": self.idempotency_key,
                "policy_version": self.policy_version,
                "session_id": self.session_id,
                "evidence": [drop_none(vars(item).copy()) for item in self.evidence],
                "changes": [drop_none(vars(item).copy()) for item in self.changes],
                "attributes": dict(self.attributes),
            }
        )
