"""Drives the Python SDK (sdk/python) against a running ingest edge, for tests/it/sdk.rs.

`send N`: emits N good events in batches of 7, one event with a malformed action and one with an
action only sealtrail writes, flushes, and prints what was accepted and refused as JSON.
`exit N`: emits N events, prints their ids, and exits without flushing: the SDK's exit hook must
deliver them.
`retry N`: emits N events, flushes, and prints what was accepted and how many retries it took.
"""

import json
import os
import sys

from sealtrail import Actor, Client, Event, Resource


def event(action: str) -> Event:
    return Event(action=action, actor=Actor(id="backoffice", type="SERVICE"), resource=Resource(type="invoice", id="inv-1"))


def main() -> int:
    mode, count = sys.argv[1], int(sys.argv[2])
    client = Client(
        os.environ["SEALTRAIL_URL"],
        os.environ["SEALTRAIL_KEY"],
        os.environ["SEALTRAIL_TENANT"],
        ca_file=os.environ.get("SEALTRAIL_CA"),
        batch_size=7,
    )
    ids = [client.emit(event("billing.refund.posted")) for _ in range(count)]
    if mode == "exit":
        print(json.dumps({"ids": ids}), flush=True)
        return 0
    if mode == "retry":
        if not client.flush(timeout=120):
            print("flush timed out", file=sys.stderr)
            return 1
        print(json.dumps({"ids": ids, "accepted": client.stats.accepted, "retries": client.stats.retries}))
        return 0
    bad = client.emit(event("Not An Action"))
    reserved = client.emit(event("audit.events.read"))
    if not client.flush(timeout=120):
        print("flush timed out", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "ids": ids,
                "bad": bad,
                "reserved": reserved,
                "accepted": client.stats.accepted,
                "rejected": {r.event.event_id: r.reason for r in client.rejections},
                "http_version": client.stats.http_version,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
