"""Role validation messages and persistence."""

import pytest

from deconfound.data import Roles, Store, guess_roles, validate
from deconfound.errors import RolesError

SCHEMA = {"text": "VARCHAR", "context": "VARCHAR", "outcome": "DOUBLE", "label": "VARCHAR",
          "popularity": "DOUBLE", "team_region": "VARCHAR", "published_at": "TIMESTAMP", "quality": "DOUBLE"}


def test_valid_roles_pass():
    roles = Roles(text="text", context="context", outcome="outcome", timestamp="published_at",
                  confounders=["popularity"], instruments=["team_region"], truth="quality")
    errors, warnings = validate(roles, SCHEMA)
    assert errors == [] and warnings == []


@pytest.mark.parametrize("roles, phrase", [
    (Roles(context="context", outcome="outcome"), "text: choose"),
    (Roles(text="text", outcome="label"), "not numeric"),
    (Roles(text="text", outcome="missing"), "does not exist"),
    (Roles(text="text", outcome="outcome", confounders=["popularity"], instruments=["popularity"]),
     "both confounders and instruments"),
    (Roles(text="text", outcome="outcome", instruments=["team_region"]), "needs at least one confounder"),
    (Roles(text="text", outcome="outcome", experiment="label"), "go together"),
    (Roles(text="text", outcome="outcome", timestamp="label"), "not a date/time"),
    (Roles(text="text", outcome="outcome", truth="label"), "must be numeric"),
])
def test_invalid_roles_have_clear_messages(roles, phrase):
    errors, _ = validate(roles, SCHEMA)
    assert any(phrase in e for e in errors), errors


def test_roles_persist_across_reopen(tmp_path, store):
    path = tmp_path / "t.csv"
    path.write_text("text,context,outcome,label\nhi,ctx,1.5,a\n")
    store.ingest(path, table="t")
    with pytest.raises(RolesError, match="not numeric"):
        store.save_roles("t", Roles(text="text", outcome="label"))
    assert store.load_roles("t") is None
    warnings = store.save_roles("t", Roles(text="text", context="context", outcome="outcome",
                                           confounders=["label"]))
    assert any("no instrument" in w for w in warnings)
    again = Store(store.path).load_roles("t")
    assert again.text == "text" and again.confounders == ["label"]
    assert Roles.from_dict(again.to_dict() | {"future_field": 1}) == again


def test_guess_roles_from_names():
    roles = guess_roles(SCHEMA)
    assert (roles.text, roles.context, roles.outcome, roles.timestamp, roles.truth) == \
        ("text", "context", "outcome", "published_at", "quality")
