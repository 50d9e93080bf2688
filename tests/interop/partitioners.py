"""Produces prepared records with Python's confluent-kafka, each through the partitioner its line
names ("default" leaves librdkafka's own default, `consistent_random`), the way a real producer
would, and prints where each record landed: "<key> <partition>" per record, then "ok <count>".

Input file: one record per line, "<partitioner>\t<key>\t<value as hex>". An optional fourth
argument names a Confluent client properties file with the security settings."""

import sys

from confluent_kafka import Producer

import client_properties

bootstrap, topic, path = sys.argv[1], sys.argv[2], sys.argv[3]
security = client_properties.load(sys.argv[4] if len(sys.argv) > 4 else None)

batches = {}
with open(path, encoding="utf-8") as lines:
    for line in lines:
        partitioner, key, value = line.rstrip("\n").split("\t")
        batches.setdefault(partitioner, []).append((key, bytes.fromhex(value)))

landed = []
for partitioner, records in batches.items():
    config = {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", **security}
    if partitioner != "default":
        config["partitioner"] = partitioner
    producer = Producer(config)
    for key, value in records:
        producer.produce(
            topic,
            key=key,
            value=value,
            on_delivery=lambda err, msg: landed.append((msg.key().decode(), msg.partition())) if err is None else None,
        )
        producer.poll(0)
    remaining = producer.flush(60)
    assert remaining == 0, f"{remaining} records not acknowledged"

expected = sum(len(records) for records in batches.values())
assert len(landed) == expected, (len(landed), expected)
for key, partition in landed:
    print(f"{key} {partition}")
print(f"ok {len(landed)}")
