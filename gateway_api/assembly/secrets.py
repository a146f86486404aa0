"""The secrets every process of one deployment must share, loaded (or refused) at start.

`serve` is one process: what is not configured is generated once into its data dir.
`api` and `worker` are parts of a deployment with several processes (compose, replicas),
where a secret generated per process would make each one unable to read the others'
key hashes or payloads, so there a missing secret stops start-up with one clear line.
"""

from __future__ import annotations

from gateway_api.assembly.groups import Mode
from gateway_core.auth.secrets import load_or_create_secret
from gateway_core.config import Settings
from gateway_core.process import StartupError
from temporal_workers.payload_codec import AesGcmCodec, PayloadKeyError, load_or_create_key


def process_secrets(settings: Settings, mode: Mode) -> tuple[bytes, AesGcmCodec]:
    """The key-hash secret and the payload codec of this process."""
    hash_secret = settings.key_hash_secret.get_secret_value() if settings.key_hash_secret else None
    payload_key = settings.payload_key.get_secret_value() if settings.payload_key else None
    if mode != "serve":
        missing = [
            name
            for name, value in (
                ("PMP_KEY_HASH_SECRET", hash_secret),
                ("PMP_PAYLOAD_KEY", payload_key),
            )
            if not value
        ]
        if missing:
            raise StartupError(
                f"pmp-gateway {mode} needs {' and '.join(missing)} set, the same in every "
                "process of the deployment (see README: Run modes and settings)"
            )
    try:
        key = load_or_create_key(payload_key, settings.data_dir, create=mode == "serve")
    except PayloadKeyError as error:
        raise StartupError(f"PMP_PAYLOAD_KEY: {error}") from None
    secret = load_or_create_secret(hash_secret, settings.data_dir)
    if len(secret) < 32:
        raise StartupError("PMP_KEY_HASH_SECRET must be at least 32 bytes")
    return secret, AesGcmCodec(key)
