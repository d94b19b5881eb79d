"""Reading providers' published documents (tests/fixtures/providers) as JSON Schema: one copy of
the helpers every contract test uses."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs

FIXTURES = Path(__file__).parents[1] / "fixtures/providers"


def load(relative: str) -> Any:
    return json.loads((FIXTURES / relative).read_text())


def nullable_as_null_type(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` (kept in several 3.1 documents) as JSON Schema's `null` type."""
    if isinstance(node, dict):
        node = {k: nullable_as_null_type(v) for k, v in node.items()}
        if node.pop("nullable", False) is True:
            node = {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [nullable_as_null_type(v) for v in node]
    return node


def openapi_validator(document: dict, name: str, *, components: dict | None = None):
    """A validator for `#/components/schemas/<name>` of an OpenAPI document."""
    components = components if components is not None else nullable_as_null_type(document["components"])
    return jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{name}", "components": components})


def errors(validator, body: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.instance_path)) or '(top)'}: {e.message[:200]}" for e in validator.iter_errors(body)]


def closed(schema: dict) -> dict:
    """A pydantic model's JSON schema with every object closed: a field the SDK does not know is drift."""
    schema = copy.deepcopy(schema)
    for node in [schema, *schema.get("$defs", {}).values()]:
        if node.get("type") == "object" and node.get("properties"):
            node["additionalProperties"] = False
    return schema


def curl_body(curl: str) -> Any:
    """The JSON body of a documented `curl ... -d '{...}'` example."""
    match = re.search(r"-d '(.*)'", curl, re.S)
    assert match, curl
    return json.loads(match.group(1))
