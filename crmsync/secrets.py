"""Secret references: ``env:VAR`` and ``keyring:SERVICE/NAME``. Values never live in config.

Errors name the key path and the reference, never a value.
"""

from __future__ import annotations

import os
import re

from crmsync.errors import SecretError
from crmsync.hookspecs import SecretRef

ENV_RE = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")
KEYRING_RE = re.compile(r"^keyring:([^/\s]+)/(\S.*)$")

NO_KEYRING_HELP = (
    "no usable keyring backend on this machine (common on headless servers). Either install "
    "one, e.g. `pip install keyrings.cryptfile` and set PYTHON_KEYRING_BACKEND="
    "keyrings.cryptfile.cryptfile.CryptFileKeyring, or use an `env:VAR` reference instead"
)


def is_reference(value: object) -> bool:
    return isinstance(value, str) and bool(ENV_RE.match(value) or KEYRING_RE.match(value))


def reference_error(value: object) -> str | None:
    """Why ``value`` is not acceptable where a secret reference is expected (None if it is)."""
    if is_reference(value):
        return None
    if isinstance(value, str) and value.startswith(("env:", "keyring:")):
        return "malformed secret reference: expected `env:VAR_NAME` or `keyring:SERVICE/NAME`"
    return (
        "a literal secret is not allowed in the config file (it would end up in backups, "
        "diffs and screenshots); store it in the keyring and write `keyring:SERVICE/NAME`, "
        "or export it and write `env:VAR_NAME`"
    )


def _keyring_backend_usable() -> bool:
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return False
    inner = getattr(backend, "backends", None)  # ChainerBackend with nothing to chain
    return not (inner is not None and len(inner) == 0)


def resolve(ref: str, key_path: str) -> str:
    """Return the secret value behind ``ref``; raise SecretError naming ``key_path`` if missing."""
    m = ENV_RE.match(ref)
    if m:
        value = os.environ.get(m.group(1))
        if not value:
            raise SecretError(
                f"secret reference {ref} points to environment variable {m.group(1)}, "
                "which is not set",
                path=key_path,
            )
        return value
    m = KEYRING_RE.match(ref)
    if m:
        import keyring
        from keyring.errors import KeyringError

        if not _keyring_backend_usable():
            raise SecretError(f"cannot read {ref}: {NO_KEYRING_HELP}", path=key_path)
        try:
            value = keyring.get_password(m.group(1), m.group(2))
        except KeyringError as exc:
            raise SecretError(
                f"cannot read {ref} from the keyring ({type(exc).__name__}); {NO_KEYRING_HELP}",
                path=key_path,
            ) from None
        if not value:
            raise SecretError(
                f"no keyring entry for {ref}; store it with "
                f"`keyring set {m.group(1)} {m.group(2)}`",
                path=key_path,
            )
        return value
    raise SecretError(reference_error(ref) or "bad secret reference", path=key_path)


def make_ref(ref: str, key_path: str) -> SecretRef:
    return SecretRef(ref=ref, key_path=key_path, resolver=resolve)


def store_in_keyring(service: str, name: str, value: str) -> str:
    """Save a secret in the keyring and return its reference (used by `crmsync auth`)."""
    import keyring

    if not _keyring_backend_usable():
        raise SecretError(f"cannot store keyring:{service}/{name}: {NO_KEYRING_HELP}")
    keyring.set_password(service, name, value)
    return f"keyring:{service}/{name}"
