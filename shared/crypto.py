"""Envelope encryption: personal fields are AES-256-GCM ciphertext under a data key per referral, and each
data key is kept only wrapped by a key-encryption key (KEK) from configuration.

Erasing a referral deletes its data key (crypto-shredding): whatever still holds ciphertext under it (a
backup, a replica, a WAL file) holds nothing readable. Rotating the KEK re-wraps the data keys; no field is
re-encrypted. The `cryptography` package does the cryptography; this module only arranges it.

A sealed value is b"v1" + a 12-byte random nonce + the AES-GCM ciphertext and tag. Its associated data is
the referral id and the field's name ("referrals.body"), so a ciphertext moved to another row or column
fails to open. A KEK is anything with an `id`, `wrap` and `unwrap` (`Kek`): `FileKek` reads 32 random bytes,
base64, from a file (dev, or production without a KMS); a KMS client plugs in behind the same Protocol.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.config import VAR_DIR, ConfigError

VERSION = b"v1"
NONCE_BYTES = 12
KEY_BYTES = 32
DEV_KEK_FILE = VAR_DIR / "keys" / "dev-data-kek.b64"


class Unreadable(Exception):
    """The ciphertext does not open under this key and associated data: tampered, moved, or another key."""


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def associated_data(referral_id: str, field: str) -> bytes:
    return f"{referral_id}\n{field}".encode()


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if not sealed.startswith(VERSION):
        raise Unreadable("not a v1 ciphertext")
    nonce, body = sealed[len(VERSION) : len(VERSION) + NONCE_BYTES], sealed[len(VERSION) + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, aad)
    except InvalidTag:
        raise Unreadable("the ciphertext does not open under this key") from None


class Kek(Protocol):
    """A key-encryption key: a file's (FileKek) or a KMS's. `id` names it beside every key it wrapped."""

    @property
    def id(self) -> str: ...

    def wrap(self, data_key: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes) -> bytes: ...


class FileKek:
    """A KEK held in memory, read from a file of 32 random bytes in base64. Its id is a digest of the key, so
    the same file always has the same id and no id reveals the key."""

    def __init__(self, key: bytes):
        if len(key) != KEY_BYTES:
            raise ValueError(f"a KEK is {KEY_BYTES} bytes, not {len(key)}")
        self._key = key
        self.id = "file:" + hashlib.sha256(b"referrals-kek-id\n" + key).hexdigest()[:16]

    @classmethod
    def from_file(cls, path: str | Path, *, name: str = "DATA_KEK_FILE") -> FileKek:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            fix = f"create one with `referrals-keys ensure {path}`"
            raise ConfigError(f"{name}: cannot read {path} ({exc.strerror}); {fix}") from None
        try:
            return cls(base64.b64decode(raw.strip(), validate=True))
        except (binascii.Error, ValueError):
            raise ConfigError(f"{name}: {path} is not {KEY_BYTES} random bytes in base64") from None

    def wrap(self, data_key: bytes) -> bytes:
        return seal(self._key, data_key, self.id.encode())

    def unwrap(self, wrapped: bytes) -> bytes:
        return open_sealed(self._key, wrapped, self.id.encode())


@dataclass(frozen=True)
class KekRing:
    """The current KEK (wraps every new data key) and the previous ones still readable, by id."""

    current: Kek
    previous: tuple[Kek, ...] = ()

    def by_id(self, kek_id: str) -> Kek:
        for kek in (self.current, *self.previous):
            if kek.id == kek_id:
                return kek
        raise Unreadable(f"no configured KEK has id {kek_id}: add its file to DATA_KEK_PREVIOUS_FILES")


def ensure_kek_file(path: str | Path) -> bool:
    """Create a KEK file (mode 0600) unless one exists; True if created. Two processes racing: one creates."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as file:
        file.write(base64.b64encode(os.urandom(KEY_BYTES)) + b"\n")
    return True


def keks_from_env(env: Mapping[str, str], *, production: bool) -> KekRing:
    """DATA_KEK_FILE (required in production; dev and tests create var/keys/dev-data-kek.b64 when it is unset)
    and DATA_KEK_PREVIOUS_FILES (comma-separated: the KEKs rotated away from, until `referrals-keys rotate`)."""
    current = env.get("DATA_KEK_FILE", "")
    if not current:
        if production:
            raise ConfigError(
                "DATA_KEK_FILE is not set: the file of the key-encryption key wrapping every referral's data key"
            )
        ensure_kek_file(DEV_KEK_FILE)
        current = str(DEV_KEK_FILE)
    previous = _paths(env.get("DATA_KEK_PREVIOUS_FILES", ""))
    return KekRing(
        FileKek.from_file(current),
        tuple(FileKek.from_file(p, name="DATA_KEK_PREVIOUS_FILES") for p in previous),
    )


def _paths(raw: str) -> Iterable[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]
