"""Snapshot repository encryption: sealed objects, passphrase-wrapped master key."""

from __future__ import annotations

import pytest

from crmsync.snapshots.crypto import (
    AesGcmCodec,
    PlainCodec,
    WrongPassphrase,
    change_passphrase,
    new_encryption,
    unlock,
)
from crmsync.snapshots.errors import RepositoryCorrupt

FAST_N = 2**10  # the lowest cost unlock() accepts; real repositories default to 2**15
PASSPHRASE = "correct horse battery staple"
WHERE = "/srv/snapshots"
DATA = b'{"id":"r1","name":"Ada Lovelace"}\n' * 4


@pytest.fixture
def encrypted() -> tuple[dict, AesGcmCodec]:
    return new_encryption(PASSPHRASE, n=FAST_N)


def test_sealed_object_opens_to_the_same_bytes(encrypted):
    _, codec = encrypted
    assert codec.open(codec.seal(DATA, "pack"), "pack", "packs/ab/ab12") == DATA


def test_encryption_object_reopens_with_the_passphrase(encrypted):
    encryption, codec = encrypted
    reopened = unlock(encryption, PASSPHRASE, WHERE)
    assert reopened.open(codec.seal(DATA, "index"), "index", "index/1") == DATA
    assert set(encryption) == {"cipher", "kdf", "n", "r", "p", "salt", "key"}
    assert encryption["n"] == FAST_N


def test_same_plaintext_seals_differently_and_never_in_clear(encrypted):
    _, codec = encrypted
    first, second = codec.seal(DATA, "pack"), codec.seal(DATA, "pack")
    assert first != second
    assert b"Ada Lovelace" not in first
    assert first[0] == 1


def test_wrong_passphrase_is_reported_without_either_passphrase(encrypted):
    encryption, _ = encrypted
    with pytest.raises(WrongPassphrase) as err:
        unlock(encryption, "hunter2", WHERE)
    message = str(err.value)
    assert message == f"wrong passphrase for the snapshot repository at {WHERE}"
    assert "hunter2" not in message and PASSPHRASE not in message


def test_codec_repr_hides_the_key(encrypted):
    _, codec = encrypted
    assert repr(codec) == "AesGcmCodec(key=<hidden>)"
    assert not any(isinstance(v, bytes) for v in vars(codec).values())


@pytest.mark.parametrize("position", [0, 5, 20, -1])
def test_tampered_byte_is_corruption_naming_the_object(encrypted, position):
    _, codec = encrypted
    stored = bytearray(codec.seal(DATA, "pack"))
    stored[position] ^= 0x01
    with pytest.raises(RepositoryCorrupt, match=r"^packs/ab/ab12: ") as err:
        codec.open(bytes(stored), "pack", "packs/ab/ab12")
    assert err.value.name == "packs/ab/ab12"


def test_object_sealed_as_one_kind_does_not_open_as_another(encrypted):
    _, codec = encrypted
    stored = codec.seal(DATA, "pack")
    with pytest.raises(RepositoryCorrupt, match="not of kind 'index'"):
        codec.open(stored, "index", "index/1")


@pytest.mark.parametrize("keep", [0, 1, 12, 28, -1])
def test_truncated_object_is_corruption(encrypted, keep):
    _, codec = encrypted
    stored = codec.seal(DATA, "snapshot")
    with pytest.raises(RepositoryCorrupt) as err:
        codec.open(stored[:keep], "snapshot", "snapshots/s1")
    assert err.value.name == "snapshots/s1"


def test_unknown_version_byte_names_the_version(encrypted):
    _, codec = encrypted
    stored = b"\x02" + codec.seal(DATA, "pack")[1:]
    with pytest.raises(RepositoryCorrupt, match="unknown encrypted object version 2"):
        codec.open(stored, "pack", "packs/ab/ab12")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("salt", None),
        ("key", None),
        ("key", "not base64!"),
        ("key", "c2hvcnQ="),
        ("salt", "c2hvcnQ="),
        ("n", 3000),
        ("n", 2**9),
        ("n", 2**23),
        ("n", "32768"),
        ("n", True),
        ("r", 0),
        ("p", 17),
        ("cipher", "chacha20"),
        ("kdf", "argon2id"),
    ],
)
def test_malformed_encryption_config_names_the_bad_key(encrypted, key, value):
    encryption = dict(encrypted[0])
    if value is None:
        del encryption[key]
    else:
        encryption[key] = value
    with pytest.raises(RepositoryCorrupt, match=rf"^config: encryption\.{key}: ") as err:
        unlock(encryption, PASSPHRASE, WHERE)
    assert err.value.name == "config"
    assert PASSPHRASE not in str(err.value)


def test_encryption_config_that_is_not_an_object_is_corruption():
    with pytest.raises(RepositoryCorrupt, match=r"^config: encryption: not an object"):
        unlock([], PASSPHRASE, WHERE)  # type: ignore[arg-type]


def test_changed_passphrase_unlocks_data_sealed_before(encrypted):
    encryption, codec = encrypted
    stored = codec.seal(DATA, "snapshot")
    changed = change_passphrase(encryption, PASSPHRASE, "new passphrase", WHERE)
    assert changed["salt"] != encryption["salt"]
    assert changed["n"] == FAST_N
    with pytest.raises(WrongPassphrase):
        unlock(changed, PASSPHRASE, WHERE)
    assert unlock(changed, "new passphrase", WHERE).open(stored, "snapshot", "snapshots/s1") == DATA


def test_change_passphrase_can_raise_the_scrypt_cost(encrypted):
    encryption, _ = encrypted
    changed = change_passphrase(encryption, PASSPHRASE, "new", WHERE, n=2 * FAST_N)
    assert changed["n"] == 2 * FAST_N
    unlock(changed, "new", WHERE)


def test_change_passphrase_needs_the_old_one(encrypted):
    encryption, _ = encrypted
    with pytest.raises(WrongPassphrase):
        change_passphrase(encryption, "guess", "new", WHERE)


def test_empty_passphrase_is_refused():
    with pytest.raises(Exception, match="must not be empty"):
        new_encryption("", n=FAST_N)


def test_plain_codec_stores_objects_unchanged():
    codec = PlainCodec()
    assert codec.encrypted is False
    assert codec.seal(DATA, "pack") == DATA
    assert codec.open(DATA, "pack", "packs/ab/ab12") == DATA
