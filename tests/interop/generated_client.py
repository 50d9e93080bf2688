"""Generates a Python client from the API's OpenAPI document with openapi-python-client (a
standard generator, from PyPI) and calls the API through it, for tests/it/api/openapi.rs.

argv: the document's path and a scratch directory. Environment: SEALTRAIL_URL, SEALTRAIL_TENANT,
SEALTRAIL_PRODUCER_KEY, SEALTRAIL_AUDITOR_KEY, SEALTRAIL_EVENT (one event's JSON). Prints what the
calls answered, as JSON.
"""

import json
import os
import pathlib
import subprocess
import sys


def generate(document: str, scratch: pathlib.Path) -> None:
    config = scratch / "config.yaml"
    # No formatting hooks: the generator's output is used as it comes.
    config.write_text("post_hooks: []\npackage_name_override: sealtrail_generated\n")
    subprocess.run(
        [
            sys.executable, "-m", "openapi_python_client", "generate",
            "--path", document, "--config", str(config), "--meta", "none",
            "--output-path", str(scratch / "sealtrail_generated"),
        ],
        check=True,
        stdout=sys.stderr,
    )
    sys.path.insert(0, str(scratch))


def main() -> int:
    generate(sys.argv[1], pathlib.Path(sys.argv[2]))
    from sealtrail_generated import AuthenticatedClient
    from sealtrail_generated.api.events import list_events
    from sealtrail_generated.api.ingest import ingest_events
    from sealtrail_generated.models import EventJson

    url, tenant = os.environ["SEALTRAIL_URL"], os.environ["SEALTRAIL_TENANT"]
    producer = AuthenticatedClient(base_url=url, token=os.environ["SEALTRAIL_PRODUCER_KEY"])
    auditor = AuthenticatedClient(base_url=url, token=os.environ["SEALTRAIL_AUDITOR_KEY"])
    event = EventJson.from_dict(json.loads(os.environ["SEALTRAIL_EVENT"]))

    sent = ingest_events.sync_detailed(client=producer, body=[event], x_tenant_id=tenant, x_idempotency_key="generated-1")
    elsewhere = ingest_events.sync_detailed(client=producer, body=[event], x_tenant_id=tenant + "-other")
    listed = list_events.sync_detailed(client=auditor)
    answer = sent.parsed
    print(json.dumps({
        "ingest_status": int(sent.status_code),
        "accepted": answer.accepted,
        "results": [{"event_id": r.event_id, "status": str(r.status.value)} for r in answer.results],
        "elsewhere_status": int(elsewhere.status_code),
        "elsewhere_code": elsewhere.parsed.error.code,
        "list_status": int(listed.status_code),
        "listed": json.loads(listed.content),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
