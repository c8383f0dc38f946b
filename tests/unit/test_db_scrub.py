"""shared.db on SQLite: an erased value leaves no bytes behind in the database file or its write-ahead log."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from shared.db import make_engine, scrub_files

CANARY = "Zephyrine-Canary-4417"


def _raw(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


def test_a_deleted_value_is_gone_from_the_db_and_wal_files_after_scrub(tmp_path: Path) -> None:
    database = tmp_path / "service.db"
    engine = make_engine(f"sqlite:///{database}", instrument=False)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)"))
        connection.execute(text("INSERT INTO people (name) VALUES (:n), ('someone else')"), {"n": CANARY})
    with engine.connect() as connection:  # the row reached the file (or its log) before the erasure
        connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
    assert CANARY.encode() in _raw(database) + _raw(tmp_path / "service.db-wal")

    with engine.begin() as connection:
        connection.execute(text("DELETE FROM people WHERE name = :n"), {"n": CANARY})
    scrub_files(engine)

    for path in (database, tmp_path / "service.db-wal"):
        assert CANARY.encode() not in _raw(path), path.name
    with engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM people")).scalars().all() == ["someone else"]
    engine.dispose()


def test_scrub_files_leaves_a_non_sqlite_engine_alone() -> None:
    class _Dialect:
        name = "postgresql"

    class _Engine:
        dialect = _Dialect()

        def connect(self):  # pragma: no cover - must not be called
            raise AssertionError("scrub_files connected to PostgreSQL")

    scrub_files(_Engine())  # type: ignore[arg-type]
