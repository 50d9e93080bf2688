"""A client sealtrail did not write (Python's confluent-kafka) against the local broker:
create a topic, produce keyed messages idempotently, consume them back in a group. The fourth
argument, a Confluent client properties file, gives the security settings (SASL_SSL, the CA)."""

import sys
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

import client_properties

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
security = client_properties.load(sys.argv[4] if len(sys.argv) > 4 else None)

admin = AdminClient({"bootstrap.servers": bootstrap, **security})
for future in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]).values():
    future.result(timeout=30)

acked = []
producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", **security})
for n in range(count):
    producer.produce(
        topic,
        key=f"tenant-{n % 4}",
        value=f"python-{n}",
        on_delivery=lambda err, msg: acked.append(msg.value().decode()) if err is None else None,
    )
remaining = producer.flush(30)
assert remaining == 0 and len(acked) == count, (remaining, len(acked))

consumer = Consumer(
    {
        "bootstrap.servers": bootstrap,
        "group.id": f"{topic}-group",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        **security,
    }
)
consumer.subscribe([topic])
seen = []
deadline = time.monotonic() + 120
while len(seen) < count and time.monotonic() < deadline:
    message = consumer.poll(1.0)
    if message is None:
        continue
    assert message.error() is None, message.error()
    seen.append(message.value().decode())
consumer.commit(asynchronous=False)
consumer.close()
assert sorted(seen) == sorted(acked), (len(seen), len(acked))
print(f"ok {len(seen)}")
