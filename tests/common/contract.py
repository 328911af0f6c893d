"""The events' contract (docs/asyncapi.json, generated from the Rust types): every event a
service publishes is checked against its message's schema with a JSON Schema validator."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker

REPO = Path(__file__).resolve().parents[2]
DOCUMENT = REPO / "docs" / "asyncapi.json"

# The formats the schemas use, checked strictly.
FORMATS = FormatChecker()


@FORMATS.checks("uuid", raises=ValueError)
def _uuid(value: object) -> bool:
    return not isinstance(value, str) or str(uuid.UUID(value)) == value.lower()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


class Contract:
    """The AsyncAPI document, and a validator per event type."""

    def __init__(self, path: Path = DOCUMENT) -> None:
        self.document: dict[str, Any] = json.loads(path.read_text())
        self.validators: dict[str, Draft7Validator] = {}
        self.dataschemas: dict[str, str] = {}
        for key, message in self.document["components"]["messages"].items():
            # The whole document as the root, so that `#/components/...` references resolve.
            schema = {**self.document, "$ref": f"#/components/messages/{key}/payload"}
            self.validators[message["name"]] = Draft7Validator(schema, format_checker=FORMATS)
            self.dataschemas[message["name"]] = message["payload"]["properties"]["dataschema"]["const"]

    def is_ours(self, event: dict[str, Any]) -> bool:
        """Whether the event says it follows this contract (events the tests forge do not)."""
        return str(event.get("dataschema", "")).startswith("urn:todo-mcp:events:")

    def errors(self, event: dict[str, Any]) -> list[str]:
        """Where `event` breaks its type's schema; empty when it follows it."""
        validator = self.validators.get(str(event.get("type")))
        if validator is None:
            return [f"no message in the contract for type {event.get('type')!r}"]
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(event)'}: {e.message}"
            for e in sorted(validator.iter_errors(event), key=lambda e: list(map(str, e.absolute_path)))
        ]
