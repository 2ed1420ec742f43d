"""The OpenAPI 3.1 document, built from the route table and the models of ``schemas.py``."""

from __future__ import annotations

import functools

from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from tilannekuva.api.routes import ROUTES, Param, Raw, Route
from tilannekuva.api.schemas import Error

REF = "#/components/schemas/{model}"
INFO = {
    "title": "tilannekuva — situation picture of families with children",
    "version": "1.2",
    "description": "Output contract situation-api.md, version 1.2 (history; disclosure "
    "control). Small cells are suppressed (a count from 1 to SITUATION_MIN_CELL−1 is "
    "null); every day of the history is suppressed as a whole picture, exactly as the "
    "present is. Protected values (docs/disclosure.md): every shown count of the "
    "picture, its history, the stream, the export, the alerts and the metrics is "
    "published as the exact count plus a perturbation drawn by its cell key (the cell "
    "key method): at most ±2, an exact 0 stays 0, a count of at least SITUATION_MIN_CELL "
    "is never published below it, and the same families always give the same value. "
    "Published counts therefore need not add up (areas to municipality, groups to "
    "families). The family-type counts of /api/v1/types are suppressed, not yet "
    "perturbed. The exact counts are answered only on /api/v1/audit/…, with "
    "SITUATION_AUDIT_TOKEN.",
}
UNAUTHORIZED = "missing or wrong bearer token (always, when no token is configured)"
UNREACHABLE = "Redis is unreachable: retry after the Retry-After header's seconds"


class _Schemas(GenerateJsonSchema):
    """Pydantic's JSON schema without a title per field (the name says it) and without
    ``default: null`` on optional keys, which here may be missing but are never null."""

    def field_title_should_be_set(self, schema) -> bool:
        return False

    def default_schema(self, schema):
        if schema.get("default", ...) is None:
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)


@functools.cache
def document() -> dict:
    """The document served at /openapi.json (built once: the table is fixed)."""
    models = [Error] + list(dict.fromkeys(r.body for r in ROUTES if not isinstance(r.body, Raw)))
    refs, defs = models_json_schema(
        [(m, "serialization") for m in models], ref_template=REF, schema_generator=_Schemas
    )
    schemas = {m: refs[(m, "serialization")] for m in models}
    paths: dict[str, dict] = {}
    for r in ROUTES:
        paths.setdefault(r.path, {})[r.method.lower()] = _operation(r, schemas)
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": defs["$defs"],
        },
        "paths": paths,
    }


def _operation(r: Route, schemas: dict) -> dict:
    def answer(description: str, media_type: str, schema: dict) -> dict:
        return {"description": description, "content": {media_type: {"schema": schema}}}

    if isinstance(r.body, Raw):
        ok = answer(r.body_description, r.body.media_type, r.body.schema)
    else:
        ok = answer(r.body_description, "application/json", schemas[r.body])
    responses = {"200": ok}
    if not r.public:
        responses["401"] = answer(UNAUTHORIZED, "application/json", schemas[Error])
    errors = dict(r.errors)
    if r.reads_redis:  # middleware.unavailable
        errors[503] = f"{errors[503]}; or {UNREACHABLE}" if 503 in errors else UNREACHABLE
    for status, when in sorted(errors.items()):
        responses[str(status)] = answer(when, "application/json", schemas[Error])
    op = {
        "summary": r.summary,
        **({"description": r.description} if r.description else {}),
        "operationId": r.name,
        "security": [] if r.public else [{"bearer": []}],
        "responses": responses,
    }
    if r.params:
        op["parameters"] = [_parameter(p) for p in r.params]
    return op


def _parameter(p: Param) -> dict:
    schema = {"type": "string"} | ({"pattern": p.pattern} if p.pattern else {})
    if p.enum:
        schema["enum"] = list(p.enum)
    return {
        "name": p.name,
        "in": p.location,
        "required": p.required,
        "description": p.description,
        "schema": schema,
        "example": p.example,
    }
