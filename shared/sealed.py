"""Sealed columns: a personal field is plaintext on the ORM object and AES-GCM ciphertext in its column.

    class Referral(Base):
        body_sealed: Mapped[bytes] = mapped_column("body", LargeBinary)
        body = Sealed("body_sealed", "referrals.body", empty={}, referral=attrgetter("id"))

Why a descriptor and a flush hook, not a column type: the data key is the row's referral's, and the
associated data names that referral, which a SQLAlchemy type never sees. Why not seal and open in each
repository: the domain (Referral.offer, rectification, erasure) reads and assigns `referral.body` itself;
with the descriptor it keeps doing so and cannot forget to seal. Assigning a field keeps its plaintext on
the object and seals it when the session flushes (`before_flush`); loading an object opens its fields.

The data keys are the session's (`DataKeys`, in `session.info`): unwrapped at most once per session, so per
unit of work or read-only view, and gone with it; no process-wide cache outlives an erasure. A field whose
referral's key was destroyed (erasure) reads as its `empty` value, and is sealed as b"" from then on; None
is stored as NULL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import LargeBinary, String, event, select
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session, sessionmaker

from shared import crypto
from shared.clock import utcnow
from shared.db import UTCDateTime


class DataKeyMixin:
    """One referral's data key, wrapped by the KEK named `kek_id`. Deleting the row shreds the referral."""

    __tablename__ = "data_keys"

    referral_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kek_id: Mapped[str] = mapped_column(String(64))
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DataKeys:
    """A session's data keys: found (and unwrapped) on first use, created for a new referral on first seal."""

    def __init__(self, session: Session, model: type[DataKeyMixin], keks: crypto.KekRing):
        self._session, self._model, self._keks = session, model, keks
        self._keys: dict[str, bytes | None] = {}

    def key(self, referral_id: str, *, create: bool = False) -> bytes | None:
        if referral_id not in self._keys:
            with self._session.no_autoflush:
                row = self._session.get(self._model, referral_id)
            self._keys[referral_id] = self._keks.by_id(row.kek_id).unwrap(row.wrapped) if row else None
        if self._keys[referral_id] is None and create:
            key = crypto.new_data_key()
            kek = self._keks.current
            row = self._model()
            row.referral_id, row.kek_id, row.wrapped = referral_id, kek.id, kek.wrap(key)
            self._session.add(row)
            self._keys[referral_id] = key
        return self._keys[referral_id]

    def new(self, referral_id: str) -> None:
        """A referral this session creates, under a fresh id: its key is made at its first seal without a look for
        one first (there is none; were there one, the key's INSERT would fail on its primary key, never seal under
        a second key)."""
        self._keys.setdefault(referral_id, None)

    def seal(self, referral_id: str, field: str, plaintext: bytes) -> bytes:
        """Ciphertext under the referral's key (made if new); b"" once the key was destroyed."""
        key = self.key(referral_id, create=True)
        return crypto.seal(key, plaintext, crypto.associated_data(referral_id, field)) if key else b""

    def open(self, referral_id: str, field: str, sealed: bytes) -> bytes | None:
        """The plaintext; None without a key (destroyed) or without ciphertext."""
        key = self.key(referral_id)
        if not key or not sealed:
            return None
        return crypto.open_sealed(key, sealed, crypto.associated_data(referral_id, field))

    def destroy(self, referral_id: str) -> None:
        """Crypto-shred the referral, in this session's transaction: everything sealed under it is unreadable."""
        with self._session.no_autoflush:
            row = self._session.get(self._model, referral_id)
        if row is not None:
            self._session.delete(row)
        self._keys[referral_id] = b""  # destroyed: seal as b"", open as empty


def data_keys(session: Session) -> DataKeys:
    keys = session.info.get("data_keys")
    if keys is None:
        if "keks" not in session.info:
            raise RuntimeError("this session has no KEKs: build its sessionmaker with shared.sealed.enable")
        keys = session.info["data_keys"] = DataKeys(session, session.info["data_key_model"], session.info["keks"])
    return keys


class Sealed:
    """A personal field stored sealed in `column` (LargeBinary), JSON-encoded, under the data key of the
    referral `referral(obj)` names."""

    def __init__(
        self,
        column: str,
        field: str,
        *,
        empty: Any,
        referral: Callable[[Any], str],
        on_set: Callable[[Any, Any], None] | None = None,
    ):
        self.column, self.field, self.empty, self.referral = column, field, empty, referral
        self.on_set = on_set  # keeps a column derived from the plaintext (e.g. a code queries need) in step

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        owner.__sealed__ = (*getattr(owner, "__sealed__", ()), self)  # type: ignore[attr-defined]

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        opened = obj.__dict__.setdefault("_opened", {})
        if self.name not in opened:
            opened[self.name] = self._open(obj)
        return opened[self.name]

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__.setdefault("_opened", {})[self.name] = value
        obj.__dict__.setdefault("_unsealed", set()).add(self.name)
        setattr(obj, self.column, None)  # marks the row dirty; before_flush writes the ciphertext
        if self.on_set is not None:
            self.on_set(obj, value)

    def _open(self, obj: Any) -> Any:
        raw = getattr(obj, self.column)
        if not raw:
            return self.empty
        session = object_session(obj)
        if session is None:
            raise RuntimeError(f"{self.field} is sealed and its object is in no session")
        plaintext = data_keys(session).open(self.referral(obj), self.field, raw)
        return self.empty if plaintext is None else json.loads(plaintext)  # None: erased, the key is gone

    def seal_into(self, obj: Any, keys: DataKeys) -> None:
        value = obj.__dict__["_opened"][self.name]
        plaintext = json.dumps(value, ensure_ascii=False).encode()
        # None is NULL, whatever the key: nothing held
        setattr(obj, self.column, None if value is None else keys.seal(self.referral(obj), self.field, plaintext))


def _seal_pending(session: Session, _context: Any, _instances: Any) -> None:
    for obj in (*session.new, *session.dirty):
        unsealed = obj.__dict__.pop("_unsealed", None)
        for field in getattr(type(obj), "__sealed__", ()):
            if unsealed and field.name in unsealed:
                field.seal_into(obj, data_keys(session))


def _open_loaded(session: Session, obj: Any) -> None:
    for field in getattr(type(obj), "__sealed__", ()):
        field.__get__(obj)


def enable(sessions: sessionmaker, model: type[DataKeyMixin], keks: crypto.KekRing) -> sessionmaker:
    """Every session `sessions` makes seals and opens the Sealed fields, with data keys in `model`'s table.
    A loaded object is opened at once: it is often read after its unit of work closed (expire_on_commit off)."""
    sessions.kw.setdefault("info", {}).update(keks=keks, data_key_model=model)
    event.listen(sessions, "before_flush", _seal_pending)
    event.listen(sessions, "loaded_as_persistent", _open_loaded)
    return sessions


def rotate(sessions: sessionmaker, model: type[DataKeyMixin], keks: crypto.KekRing) -> int:
    """Re-wrap every data key not under the current KEK with it, in one transaction; no field is re-encrypted.
    Returns how many were re-wrapped."""
    current = keks.current
    with sessions.begin() as session:
        rows = session.scalars(select(model).where(model.kek_id != current.id)).all()
        for row in rows:
            row.wrapped, row.kek_id = current.wrap(keks.by_id(row.kek_id).unwrap(row.wrapped)), current.id
    return len(rows)
