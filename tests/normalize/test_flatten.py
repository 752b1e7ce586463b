"""Nested JSON to dotted Sigma field names."""

from __future__ import annotations

from vedette.normalize.flatten import flatten_json, flatten_owned, is_flat


def test_nested_objects_and_lists_of_objects() -> None:
    record = {
        "eventName": "PutBucketPolicy",
        "userIdentity": {"type": "IAMUser", "sessionContext": {"attributes": {"mfa": "true"}}},
        "requestParameters": {"items": [{"id": "a", "tags": ["x"]}, {"id": "b", "tags": ["y"]}]},
        "resources": [],
        "empty": {},
        "ports": [80, 443],
    }
    flat = flatten_json(record)
    assert flat == {
        "eventName": "PutBucketPolicy",
        "userIdentity.type": "IAMUser",
        "userIdentity.sessionContext.attributes.mfa": "true",
        "requestParameters.items.id": ["a", "b"],
        "requestParameters.items.tags": ["x", "y"],
        "resources": [],
        "empty": None,
        "ports": [80, 443],
    }


def test_flat_records_are_not_copied() -> None:
    record = {"ts": 1.5, "answers": ["a", "b"], "id.orig_h": "10.0.0.1"}
    assert is_flat(record)
    assert flatten_owned(record) is record
    nested = {"a": [{"b": 1}]}
    assert not is_flat(nested)
    assert flatten_owned(nested) == {"a.b": [1]}
