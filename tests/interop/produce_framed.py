"""A producer sealtrail did not write (Python's confluent-kafka) sending audit records to the raw
topic the way a service would: configured from a Confluent client properties file (SASL_SSL with
SCRAM and the stack's CA), keyed by tenant with the murmur2 partitioner docs/operations.md asks
librdkafka clients for. Reads `key<TAB>hex of the Confluent-framed Avro value` lines from stdin."""

import sys

from confluent_kafka import Producer

import client_properties

bootstrap, topic, properties = sys.argv[1], sys.argv[2], sys.argv[3]

config = {
    "bootstrap.servers": bootstrap,
    "enable.idempotence": True,
    "acks": "all",
    "partitioner": "murmur2_random",
    **client_properties.load(properties),
}
assert config.get("security.protocol") == "SASL_SSL", "expected a SASL_SSL properties file"

acked, failed = [], []
producer = Producer(config)
for line in sys.stdin:
    key, value = line.rstrip("\n").split("\t")
    producer.produce(
        topic,
        key=key,
        value=bytes.fromhex(value),
        on_delivery=lambda err, msg: (failed if err else acked).append(err or msg.offset()),
    )
    producer.poll(0)
remaining = producer.flush(60)
assert remaining == 0 and not failed, (remaining, failed[:3])
print(f"ok {len(acked)}")
