"""Optional encryption of snapshot repository objects (AES-256-GCM, scrypt-wrapped master key).

A random 32-byte master key encrypts every object. The repository ``config`` carries it only
wrapped by a key derived from the passphrase (the ``"encryption"`` object built here), so the
passphrase can change without rewriting any data - as restic does.

Stored object: ``0x01 | nonce (12) | AES-GCM ciphertext + tag``, the object kind as associated
data so a pack cannot be passed off as an index or a snapshot.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from crmsync.snapshots.errors import RepositoryCorrupt, SnapshotError

OBJECT_VERSION = 1
CIPHER = "aes-256-gcm"
KDF = "scrypt"
DEFAULT_N = 2**15
MIN_N, MAX_N = 2**10, 2**22  # MIN_N only so tests stay fast; new repositories use DEFAULT_N
KEY_LEN, NONCE_LEN, TAG_LEN, SALT_LEN = 32, 12, 16, 16
_KEY_AAD = b"crmsync-snapshots key"
_CONFIG = "config"


class WrongPassphrase(SnapshotError):
    """The passphrase does not unlock the repository's master key."""

    def __init__(self, where: str):
        self.where = where
        super().__init__(f"wrong passphrase for the snapshot repository at {where}")


class ObjectCodec(Protocol):
    """Turns object bytes into what the backend stores, and back."""

    encrypted: bool

    def seal(self, data: bytes, kind: str) -> bytes: ...

    def open(self, stored: bytes, kind: str, name: str) -> bytes: ...


class PlainCodec:
    """An unencrypted repository: objects are stored as they are."""

    encrypted = False

    def seal(self, data: bytes, kind: str) -> bytes:
        return data

    def open(self, stored: bytes, kind: str, name: str) -> bytes:
        return stored


class AesGcmCodec:
    """Seals objects with AES-256-GCM under the repository's master key."""

    encrypted = True

    def __init__(self, master_key: bytes):
        if len(master_key) != KEY_LEN:
            raise ValueError(f"master key must be {KEY_LEN} bytes")
        # Only the cipher object is kept, so the raw key is not an attribute anyone can print.
        self._aead = AESGCM(master_key)

    def __repr__(self) -> str:
        return "AesGcmCodec(key=<hidden>)"

    def seal(self, data: bytes, kind: str) -> bytes:
        # A random 96-bit nonce per object: far below the ~2**32 messages per key where reuse
        # becomes a concern, and no counter state to keep consistent across concurrent writers.
        nonce = os.urandom(NONCE_LEN)
        return bytes([OBJECT_VERSION]) + nonce + self._aead.encrypt(nonce, data, _aad(kind))

    def open(self, stored: bytes, kind: str, name: str) -> bytes:
        if not stored:
            raise RepositoryCorrupt(f"{name}: empty (truncated)", name)
        if stored[0] != OBJECT_VERSION:
            raise RepositoryCorrupt(
                f"{name}: unknown encrypted object version {stored[0]} (this crmsync reads "
                f"version {OBJECT_VERSION}; the object is damaged, not encrypted, or newer)",
                name,
            )
        if len(stored) < 1 + NONCE_LEN + TAG_LEN:
            raise RepositoryCorrupt(f"{name}: truncated (shorter than nonce and tag)", name)
        nonce, sealed = stored[1 : 1 + NONCE_LEN], stored[1 + NONCE_LEN :]
        try:
            return self._aead.decrypt(nonce, sealed, _aad(kind))
        except InvalidTag:
            raise RepositoryCorrupt(
                f"{name}: fails authentication (damaged, truncated, or not of kind {kind!r})", name
            ) from None


def new_encryption(passphrase: str, *, n: int = DEFAULT_N) -> tuple[dict[str, Any], AesGcmCodec]:
    """A fresh master key: the config ``"encryption"`` object wrapping it, and its codec."""
    master = os.urandom(KEY_LEN)
    return _wrap(master, passphrase, n=n, r=8, p=1), AesGcmCodec(master)


def unlock(encryption: dict[str, Any], passphrase: str, where: str) -> AesGcmCodec:
    """The codec for a repository, or :class:`WrongPassphrase`."""
    return AesGcmCodec(_unwrap(encryption, passphrase, where))


def change_passphrase(
    encryption: dict[str, Any], old: str, new: str, where: str, *, n: int | None = None
) -> dict[str, Any]:
    """The same master key wrapped under ``new`` with a fresh salt (``n`` raises the cost)."""
    params = _params(encryption)
    master = _unwrap(encryption, old, where)
    return _wrap(master, new, n=params[0] if n is None else n, r=params[1], p=params[2])


def _aad(kind: str) -> bytes:
    if not kind:
        raise ValueError("an object kind is required")
    return b"crmsync-snapshots object " + kind.encode()


def _kek(passphrase: str, salt: bytes, n: int, r: int, p: int) -> AESGCM:
    return AESGCM(Scrypt(salt=salt, length=KEY_LEN, n=n, r=r, p=p).derive(passphrase.encode()))


def _wrap(master: bytes, passphrase: str, *, n: int, r: int, p: int) -> dict[str, Any]:
    if not passphrase:
        raise SnapshotError("the snapshot repository passphrase must not be empty")
    if not _valid_n(n):
        raise ValueError(f"scrypt n must be a power of two from {MIN_N} to {MAX_N}")
    salt, nonce = os.urandom(SALT_LEN), os.urandom(NONCE_LEN)
    wrapped = nonce + _kek(passphrase, salt, n, r, p).encrypt(nonce, master, _KEY_AAD)
    return {
        "cipher": CIPHER, "kdf": KDF, "n": n, "r": r, "p": p,
        "salt": _b64(salt), "key": _b64(wrapped),
    }  # fmt: skip


def _unwrap(encryption: dict[str, Any], passphrase: str, where: str) -> bytes:
    n, r, p = _params(encryption)
    salt = _field_bytes(encryption, "salt")
    if len(salt) < SALT_LEN:
        raise _corrupt("salt", f"shorter than {SALT_LEN} bytes")
    wrapped = _field_bytes(encryption, "key")
    if len(wrapped) != NONCE_LEN + KEY_LEN + TAG_LEN:
        raise _corrupt("key", "wrong length for a wrapped key")
    nonce, sealed = wrapped[:NONCE_LEN], wrapped[NONCE_LEN:]
    try:
        return _kek(passphrase, salt, n, r, p).decrypt(nonce, sealed, _KEY_AAD)
    except InvalidTag:
        # A damaged key field looks the same as a wrong passphrase; the passphrase is the
        # likelier cause, and the message names neither secret.
        raise WrongPassphrase(where) from None


def _params(encryption: Any) -> tuple[int, int, int]:
    if not isinstance(encryption, dict):
        raise RepositoryCorrupt(f"{_CONFIG}: encryption: not an object", _CONFIG)
    for key, expected in (("cipher", CIPHER), ("kdf", KDF)):
        if encryption.get(key) != expected:
            raise _corrupt(key, f"unsupported (this crmsync supports {expected!r})")
    n = _field_int(encryption, "n")
    if not _valid_n(n):
        raise _corrupt("n", f"must be a power of two from {MIN_N} to {MAX_N}")
    # Bounded so a damaged config cannot ask scrypt for gigabytes (memory is 128 * n * r).
    r, p = _field_int(encryption, "r"), _field_int(encryption, "p")
    if not 1 <= r <= 32:
        raise _corrupt("r", "must be from 1 to 32")
    if not 1 <= p <= 16:
        raise _corrupt("p", "must be from 1 to 16")
    return n, r, p


def _valid_n(n: int) -> bool:
    return MIN_N <= n <= MAX_N and n & (n - 1) == 0


def _field_int(encryption: dict[str, Any], key: str) -> int:
    value = encryption.get(key)
    if type(value) is not int:  # not isinstance: JSON true must not pass as 1
        raise _corrupt(key, "missing or not an integer")
    return value


def _field_bytes(encryption: dict[str, Any], key: str) -> bytes:
    value = encryption.get(key)
    if not isinstance(value, str):
        raise _corrupt(key, "missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _corrupt(key, "not valid base64") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _corrupt(key: str, problem: str) -> RepositoryCorrupt:
    return RepositoryCorrupt(f"{_CONFIG}: encryption.{key}: {problem}", _CONFIG)
