"""Reads a Confluent client properties file (`key=value` lines, `#` comments) into a librdkafka
configuration: the security settings (security.protocol, ssl.ca.location, sasl.*), without the
schema registry's (`basic.auth.*`, `schema.registry.*`), which are for a serializer."""


def load(path):
    config = {}
    if not path:
        return config
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            line = line.strip()
            if not line or line.startswith(("#", "!")) or "=" not in line:
                continue
            key, value = (part.strip() for part in line.split("=", 1))
            if key.startswith(("basic.auth.", "schema.registry.")):
                continue
            config[key] = value
    return config
