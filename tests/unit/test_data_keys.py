"""A referral's data key: looked up once per session, and not at all for a referral the session creates."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session

from shared import crypto
from shared.sealed import DataKeyMixin, DataKeys


class Base(DeclarativeBase):
    pass


class DataKey(Base, DataKeyMixin):
    pass


@pytest.fixture()
def session():
    engine = create_engine("sqlite://")  # in memory: the statements are what is counted
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


def reads_of_keys(session: Session) -> list[str]:
    statements: list[str] = []
    event.listen(
        session.get_bind(),
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: statements.append(statement) if statement.startswith("SELECT") else None,
    )
    return statements


def test_a_new_referrals_key_is_made_without_a_look_for_one(session):
    keys = DataKeys(session, DataKey, crypto.KekRing(crypto.FileKek(os.urandom(32))))
    reads = reads_of_keys(session)
    keys.new("ref-new")
    sealed = keys.seal("ref-new", "referrals.body", b"{}")
    session.flush()
    assert reads == []
    assert session.get(DataKey, "ref-new") is not None
    assert keys.open("ref-new", "referrals.body", sealed) == b"{}"


def test_a_known_referrals_key_is_read_once_and_new_does_not_forget_it(session):
    ring = crypto.KekRing(crypto.FileKek(os.urandom(32)))
    first = DataKeys(session, DataKey, ring)
    sealed = first.seal("ref-old", "referrals.body", b'{"a": 1}')
    session.commit()
    session.expunge_all()

    keys = DataKeys(session, DataKey, ring)
    reads = reads_of_keys(session)
    assert keys.open("ref-old", "referrals.body", sealed) == b'{"a": 1}'
    keys.new("ref-old")  # too late to matter: the key found is kept
    assert keys.open("ref-old", "referrals.body", sealed) == b'{"a": 1}'
    assert len(reads) == 1
