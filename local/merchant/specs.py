"""The published UCP schemas of one version, ready to validate messages against.

The schemas are read from ``../shared/specs/ucp-<version>/source`` beside the repository (or
``$UCP_SPECS_DIR``), never copied into the project. Every file is registered under the URL its place in
``source/`` gives it (``https://ucp.dev/<path>``; for schemas this is their ``$id``), which is also its
base for relative ``$ref``s; so the schemas' relative references, the OpenAPI documents'
``../../schemas/...`` ones and absolute ``https://ucp.dev/schemas/...`` ones all resolve offline.

Fields carry ``ucp_request`` / ``ucp_response`` annotations saying whether a field is sent in a
request of a given operation; they are resolved the way the UCP schema tool does (``omit`` drops
the field, ``required`` requires it, ``optional`` stops requiring it), per direction and operation.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from cartpilot_local.merchant.protocol import JsonObject

SPECS_DIR_ENV = "UCP_SPECS_DIR"
SCHEMA_HOST = "https://ucp.dev/"

Direction = Literal["request", "response"]
_ANNOTATIONS = {"request": "ucp_request", "response": "ucp_response"}


def specs_root() -> Path:
    """``$UCP_SPECS_DIR``, else ``shared/specs`` beside the repository root."""
    configured = os.environ.get(SPECS_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2].parent / "shared" / "specs"


def resolve_annotations(node: Any, direction: Direction, operation: str) -> Any:
    """A copy of ``node`` with the UCP visibility annotations applied and removed."""
    if isinstance(node, list):
        return [resolve_annotations(item, direction, operation) for item in node]
    if not isinstance(node, dict):
        return node
    original = node.get("required")
    required: list[str] | None = list(original) if isinstance(original, list) else None
    resolved: JsonObject = {}
    for key, value in node.items():
        if key in _ANNOTATIONS.values() or key == "required":
            continue
        if key != "properties" or not isinstance(value, dict):
            resolved[key] = resolve_annotations(value, direction, operation)
            continue
        properties: JsonObject = {}
        for name, schema in value.items():
            visibility = _visibility(schema, direction, operation)
            if visibility == "omit":
                required = None if required is None else [r for r in required if r != name]
                continue
            if visibility == "required":
                required = [*(required or []), *([] if name in (required or []) else [name])]
            elif visibility == "optional" and required is not None:
                required = [r for r in required if r != name]
            properties[name] = resolve_annotations(schema, direction, operation)
        resolved[key] = properties
    if required is not None:
        resolved["required"] = required
    return resolved


def _visibility(schema: Any, direction: Direction, operation: str) -> str:
    if not isinstance(schema, dict):
        return "include"
    annotation = schema.get(_ANNOTATIONS[direction])
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, dict):
        value = annotation.get(operation)
        return value if isinstance(value, str) else "include"
    return "include"


class SpecsMissing(FileNotFoundError):
    """The UCP schemas are not where the sandbox looks for them."""


class SpecLibrary:
    """One version's schemas, with validators per (direction, operation)."""

    def __init__(self, version: str, root: Path | None = None) -> None:
        self.version = version
        self.source = (root or specs_root()) / f"ucp-{version}" / "source"
        # Without the specification beside the repository (a clone on its own) the sandbox still
        # serves: profiles are then checked for their version only, and schema conformance, which
        # needs the schemas, refuses to start (``require``).
        self.available = self.source.is_dir()
        self._documents: list[tuple[str, Any]] = list(self._load()) if self.available else []
        self._lock = threading.Lock()
        self._registries: dict[tuple[Direction, str], Registry[Any]] = {}
        self._validators: dict[tuple[str, Direction, str], Draft202012Validator] = {}

    def _load(self) -> Iterator[tuple[str, Any]]:
        for path in sorted(self.source.rglob("*.json")):
            document = json.loads(path.read_text(encoding="utf-8"))
            location = SCHEMA_HOST + path.relative_to(self.source).as_posix()
            if isinstance(document, dict) and "$id" in document:
                # Relative $refs are written against the file's place in source/, and two files'
                # $ids say otherwise (the discovery profile's, 2026-01-11's service schema), so the
                # file's place is the one name a document goes by.
                document = {**document, "$id": location}
            yield location, document

    def uri(self, relative: str) -> str:
        """The URL a file under ``source/`` is registered at, e.g. ``schemas/shopping/checkout.json``."""
        return SCHEMA_HOST + relative

    def _registry(self, direction: Direction, operation: str) -> Registry[Any]:
        with self._lock:
            registry = self._registries.get((direction, operation))
            if registry is None:
                resources: list[tuple[str, Resource[Any]]] = []
                for uri, document in self._documents:
                    resolved = resolve_annotations(document, direction, operation)
                    resources.append((uri, DRAFT202012.create_resource(resolved)))
                registry = Registry().with_resources(resources)
                self._registries[(direction, operation)] = registry
            return registry

    def validator(self, schema: JsonObject, direction: Direction, operation: str) -> Draft202012Validator:
        key = (json.dumps(schema, sort_keys=True), direction, operation)
        with self._lock:
            cached = self._validators.get(key)
        if cached is not None:
            return cached
        validator = Draft202012Validator(schema, registry=self._registry(direction, operation))
        with self._lock:
            self._validators[key] = validator
        return validator

    def require(self) -> None:
        """Raises SpecsMissing when the schemas are not there to check against."""
        if not self.available:
            raise SpecsMissing(
                f"UCP {self.version} schemas not found at {self.source}; "
                f"set {SPECS_DIR_ENV} to the folder holding ucp-<version>/source"
            )

    def problems(
        self, instance: Any, schema: JsonObject, direction: Direction, operation: str
    ) -> list[tuple[str, str]]:
        """(JSON path, message) for each way ``instance`` breaks ``schema``; empty when it conforms."""
        found = []
        for error in self.validator(schema, direction, operation).iter_errors(instance):
            detail = best_match(error.context) if error.context else error
            found.append((_where(detail), _shorten(detail.message)))
        return found


def _where(error: ValidationError) -> str:
    return error.json_path


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@functools.cache
def library(version: str) -> SpecLibrary:
    """The shared library of a version (schemas are read once per process)."""
    return SpecLibrary(version)
