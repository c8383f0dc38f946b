"""shared.crypto: AES-GCM sealing under a data key, data keys wrapped by KEKs, rotation and shredding."""

from __future__ import annotations

import base64
import os

import pytest

from shared import crypto
from shared.config import ConfigError

pytestmark = pytest.mark.unit


def _kek() -> crypto.FileKek:
    return crypto.FileKek(os.urandom(32))


def test_a_sealed_value_opens_under_its_key_and_associated_data():
    key = crypto.new_data_key()
    aad = crypto.associated_data("r-1", "referrals.body")
    sealed = crypto.seal(key, b"Canarykeep Zyxw", aad)
    assert sealed.startswith(b"v1") and b"Canarykeep" not in sealed
    assert crypto.open_sealed(key, sealed, aad) == b"Canarykeep Zyxw"


def test_ciphertext_moved_to_another_row_or_column_does_not_open():
    key = crypto.new_data_key()
    sealed = crypto.seal(key, b"x", crypto.associated_data("r-1", "referrals.body"))
    with pytest.raises(crypto.Unreadable):
        crypto.open_sealed(key, sealed, crypto.associated_data("r-2", "referrals.body"))
    with pytest.raises(crypto.Unreadable):
        crypto.open_sealed(key, sealed, crypto.associated_data("r-1", "case_notes.text"))


def test_tampered_ciphertext_or_another_key_does_not_open():
    key, aad = crypto.new_data_key(), b"a"
    sealed = bytearray(crypto.seal(key, b"secret", aad))
    sealed[-1] ^= 1
    with pytest.raises(crypto.Unreadable):
        crypto.open_sealed(key, bytes(sealed), aad)
    with pytest.raises(crypto.Unreadable):
        crypto.open_sealed(crypto.new_data_key(), crypto.seal(key, b"secret", aad), aad)
    with pytest.raises(crypto.Unreadable):
        crypto.open_sealed(key, b"v0" + bytes(sealed[2:]), aad)


def test_a_data_key_rewrapped_under_a_new_kek_still_opens_what_it_sealed():
    old, new = _kek(), _kek()
    key = crypto.new_data_key()
    sealed = crypto.seal(key, b"Canarykeep", b"a")
    wrapped = old.wrap(key)
    ring = crypto.KekRing(new, (old,))
    rewrapped = new.wrap(ring.by_id(old.id).unwrap(wrapped))
    assert crypto.open_sealed(crypto.KekRing(new).by_id(new.id).unwrap(rewrapped), sealed, b"a") == b"Canarykeep"
    with pytest.raises(crypto.Unreadable):
        crypto.KekRing(new).by_id(old.id)
    with pytest.raises(crypto.Unreadable):
        new.unwrap(wrapped)


def test_kek_files_are_read_created_and_refused_with_one_line(tmp_path):
    path = tmp_path / "kek.b64"
    assert crypto.ensure_kek_file(path) and not crypto.ensure_kek_file(path)
    assert crypto.FileKek.from_file(path).id == crypto.FileKek.from_file(path).id
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    (tmp_path / "bad").write_text("not base64!")
    (tmp_path / "short").write_text(base64.b64encode(b"x" * 16).decode())
    for name in ("bad", "short", "missing"):
        with pytest.raises(ConfigError, match="DATA_KEK_FILE"):
            crypto.FileKek.from_file(tmp_path / name)


def test_the_kek_is_required_in_production_and_previous_ones_are_readable(tmp_path):
    with pytest.raises(ConfigError, match="DATA_KEK_FILE is not set"):
        crypto.keks_from_env({}, production=True)
    current, old = tmp_path / "current", tmp_path / "old"
    crypto.ensure_kek_file(current), crypto.ensure_kek_file(old)
    ring = crypto.keks_from_env({"DATA_KEK_FILE": str(current), "DATA_KEK_PREVIOUS_FILES": f"{old}, "}, production=True)
    assert ring.by_id(crypto.FileKek.from_file(old).id) is ring.previous[0]
