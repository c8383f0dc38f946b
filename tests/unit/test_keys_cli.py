"""`referrals-keys ensure [PATH]`: the KEK file a rotation moves to, made by the command (no I/O but a temp dir)."""

from __future__ import annotations

import base64

import pytest

from services.keys_cli import main
from shared import crypto

pytestmark = pytest.mark.unit


def test_ensure_creates_a_new_kek_file_at_the_path_given_and_keeps_it_after(tmp_path, capsys):
    path = tmp_path / "kek-2.b64"
    assert main(["ensure", str(path)]) == 0
    first = path.read_bytes()
    assert len(base64.b64decode(first.strip())) == crypto.KEY_BYTES and path.stat().st_mode & 0o777 == 0o600
    assert crypto.FileKek.from_file(path).unwrap(crypto.FileKek.from_file(path).wrap(b"k" * 32)) == b"k" * 32
    assert main(["ensure", str(path)]) == 0 and path.read_bytes() == first  # never overwritten
    assert capsys.readouterr().out.splitlines() == [f"created {path}", f"kept {path}"]


def test_ensure_into_a_path_it_cannot_write_says_so_in_one_line(tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["ensure", str(blocked / "kek.b64")]) == 2
    assert capsys.readouterr().err.startswith(f"referrals-keys: cannot create {blocked / 'kek.b64'}")
