"""Schemathesis hooks for the Tenantry stage (loaded by `schemathesis.toml`).

Each hook is narrow, touches positive cases only (a negative case must stay as generated:
its refusal is what it tests), and says why it exists. Three kinds:

1. Rules the spec cannot write into a schema: the list operations' cross-parameter rules
   (one parameter's validity depends on another's) and those of `custom_fields` (keys of 1
   to 64 characters: OpenAPI 3.0 has no `propertyNames`; no NUL at any depth: a recursive
   schema the TypeScript client's types cannot take). The spec states them in
   descriptions; a positive case is brought in line by dropping what breaks the rule, so
   it stays schema-valid and becomes truly valid.
2. Workarounds for cases Schemathesis 4.32.5 labels positive though their own schema
   refuses them, which are dropped: in the coverage phase, an optional header whose
   pattern needs a character other than a letter or digit (`If-Match`: `*` or `"`) gets
   no positive value, so its first *negative* value (an empty string) seeds the template
   and ships in "positive" cases; in the stateful phase, a link inferred from a nullable
   field (a person's `account_id`) that is `null` sends the path id `None`.
3. Refusals that depend on state and cannot be written into a schema, allowed as 422s
   only when the problem body says that is what they are (the statuses that are always
   state-dependent, 404 and 412, are allowed in `schemathesis.toml`).
"""

from __future__ import annotations

import atexit
import sys
from collections import Counter
from datetime import datetime, timezone

import jsonschema_rs
import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.generation.modes import GenerationMode

# `(page - 1) * limit` may not pass this (domain::pagination::MAX_OFFSET).
MAX_OFFSET = 10_000
DEFAULT_LIMIT = 50
LIST_OPERATIONS = {"list_accounts", "list_people", "list_activities", "list_activity_feed"}
# Request-body fields that name another resource of the tenant.
REFERENCES = {"account_id", "person_id", "user_id", "owner_id"}
IDEMPOTENCY_KEY_REUSED = "https://tenantry.dev/problems/idempotency-key-reused"

# What the hooks did, printed when the run ends: nothing they do goes unreported.
TALLY: Counter[str] = Counter()


@atexit.register
def _report() -> None:
    if TALLY:
        print("\nhooks.py:", file=sys.stderr)
        for what, count in sorted(TALLY.items()):
            print(f"  {count:6}  {what}", file=sys.stderr)


def _is_positive(case) -> bool:
    return case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE


def _time(value):
    try:
        return datetime.fromisoformat(str(value).replace("z", "Z")).astimezone(timezone.utc)
    except ValueError:
        return None


@schemathesis.hook
def filter_case(context, case) -> bool:
    """Kind 2: drop a positive case whose header or path value its own schema refuses."""
    if not _is_positive(case):
        return True
    for parameters, values in (
        (case.operation.headers, case.headers or {}),
        (case.operation.path_parameters, case.path_parameters or {}),
    ):
        for parameter in parameters:
            value = values.get(parameter.name)
            if isinstance(value, str) and not parameter.admits(value, jsonschema_rs.Draft4Validator):
                TALLY[f"dropped: a case labelled positive with a {parameter.name} its schema refuses"] += 1
                return False
    return True


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    return False


def _custom_fields(fields: dict) -> dict:
    """`fields` without the entries the server refuses: a key of 1 to 64 characters, no NUL
    in the key or anywhere in the value. The description says so; a schema cannot (no
    `propertyNames` in OpenAPI 3.0, and the recursive schema breaks the TypeScript client)."""
    return {
        key: value
        for key, value in fields.items()
        if 1 <= len(key) <= 64 and not _has_nul(key) and not _has_nul(value)
    }


@schemathesis.hook
def map_case(context, case):
    """Kind 1: rules on one parameter that depend on another, or on object keys."""
    if not _is_positive(case):
        return case
    operation = case.operation.definition.raw.get("operationId")
    if operation in ("create_account", "update_account"):
        body = case.body
        if isinstance(body, dict) and isinstance(body.get("custom_fields"), dict):
            fields = _custom_fields(body["custom_fields"])
            if fields != body["custom_fields"]:
                TALLY["adjusted: custom_fields entries the server refuses, removed"] += 1
            body["custom_fields"] = fields
        return case
    if operation not in LIST_OPERATIONS:
        return case
    query = case.query
    if not query:
        return case
    # A cursor is valid only if this server minted it for these filters (it is signed):
    # a generated one never is. Cursors are tested by the integration tests.
    if query.pop("cursor", None) is not None:
        TALLY["adjusted: a generated cursor, removed"] += 1
    # `updated_after` walks the sync order: not with `sort=id`.
    if str(query.get("sort")) == "id" and query.pop("updated_after", None) is not None:
        TALLY["adjusted: updated_after with sort=id, removed"] += 1
    if "page" in query:
        limit = int(query.get("limit", DEFAULT_LIMIT))
        if (int(query["page"]) - 1) * limit > MAX_OFFSET:
            # Offset pages end at row 10,000 (`too_deep`); the bound depends on `limit`.
            query.pop("page")
            TALLY["adjusted: a page past row 10,000, removed"] += 1
        else:
            # Offset pages are by id, without the sync parameters or the joined names.
            dropped = []
            if str(query.get("sort")) == "updated_at":
                dropped.append(query.pop("sort"))
            if query.pop("updated_after", None) is not None:
                dropped.append("updated_after")
            if str(query.get("include_account_name")).lower() == "true":
                dropped.append(query.pop("include_account_name"))
            if dropped:
                TALLY["adjusted: sync parameters or include_account_name with page, removed"] += 1
    start, end = _time(query.get("occurred_from")), _time(query.get("occurred_before"))
    if start is not None and end is not None and start >= end:
        # `occurred_before` must come after `occurred_from`.
        query.pop("occurred_before")
        TALLY["adjusted: occurred_before not after occurred_from, removed"] += 1
    return case


def _problem(response):
    try:
        return response.json()
    except Exception:
        return None


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    """Kind 3: keep every failure but a positive case refused for state it cannot know."""
    if not isinstance(failure, RejectedPositiveData) or response.status_code != 422:
        return True
    problem = _problem(response)
    if not isinstance(problem, dict):
        return True
    # Idempotency-Key reused with another body: a key Schemathesis drew twice.
    if problem.get("type") == IDEMPOTENCY_KEY_REUSED:
        TALLY[f"allowed: 422 Idempotency-Key reused ({case.operation.label})"] += 1
        return False
    errors = problem.get("errors") or []
    # A referenced id (account, person, user) that does not exist in the tenant: drawn at random.
    if errors and all(e.get("code") == "not_found" and e.get("field") in REFERENCES for e in errors):
        fields = ", ".join(sorted({e["field"] for e in errors}))
        TALLY[f"allowed: 422 no such {fields} ({case.operation.label})"] += 1
        return False
    return True
