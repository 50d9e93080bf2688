"""Validates an OpenAPI document with openapi-spec-validator, a standard validator nobody on the
team wrote, and prints every error found, one per line; exits 1 when there is any."""

import json
import sys

from openapi_spec_validator import OpenAPIV31SpecValidator, OpenAPIV30SpecValidator


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as handle:
        document = json.load(handle)
    version = str(document.get("openapi", ""))
    validator = OpenAPIV31SpecValidator if version.startswith("3.1") else OpenAPIV30SpecValidator
    errors = list(validator(document).iter_errors())
    for error in errors:
        print(f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}")
    print(f"{len(errors)} errors in OpenAPI {version}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
