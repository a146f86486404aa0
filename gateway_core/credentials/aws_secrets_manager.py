"""AWS Secrets Manager as a credential source (boto3, off the event loop)."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from gateway_core.credentials.base import SourceStatus, checked_value
from gateway_core.domain.models import CredentialRef
from gateway_core.errors import ConfigurationError, UpstreamError

_MISSING = frozenset({"ResourceNotFoundException", "InvalidRequestException"})


class AwsSecretsManagerSource:
    """Reads `secret_id` (optionally one JSON field of it) with the worker's AWS identity."""

    name = "aws_secrets_manager"
    cacheable = True

    def __init__(self, region: str | None, endpoint_url: str | None = None) -> None:
        self._region = region
        self._endpoint_url = endpoint_url
        self._clients: dict[str | None, Any] = {}
        self._lock = threading.Lock()

    def _client(self, region: str | None) -> Any:
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                client = boto3.session.Session().client(
                    "secretsmanager",
                    region_name=region,
                    endpoint_url=self._endpoint_url,
                    config=Config(retries={"max_attempts": 2, "mode": "standard"}),
                )
                self._clients[region] = client
        return client

    def _read(self, ref: CredentialRef) -> str:
        answer = self._client(ref.region or self._region).get_secret_value(SecretId=ref.secret_id)
        raw = answer.get("SecretString")
        if raw is None:
            raw = bytes(answer.get("SecretBinary") or b"").decode("utf-8", "replace")
        return str(raw)

    async def fetch(self, ref: CredentialRef) -> str:
        where = f"aws secret {ref.secret_id}"
        try:
            raw = await asyncio.to_thread(self._read, ref)
        except ClientError as exc:
            code = str((exc.response.get("Error") or {}).get("Code", "error"))
            if code in _MISSING:
                raise ConfigurationError(
                    f"credential {where} does not exist", code="credential_missing"
                ) from None
            raise ConfigurationError(
                f"credential {where} could not be read ({code})", code="credential_unavailable"
            ) from None
        except NoCredentialsError:
            raise ConfigurationError(
                "the worker has no AWS identity to read Secrets Manager",
                code="credential_unavailable",
            ) from None
        except BotoCoreError as exc:
            raise UpstreamError(
                f"Secrets Manager unreachable ({type(exc).__name__})",
                retryable=True,
                code="credential_store_unavailable",
            ) from None
        if ref.field is None:
            return checked_value(raw, where)
        return checked_value(_json_field(raw, ref.field, where), f"{where} field {ref.field}")

    async def check(self) -> SourceStatus:
        status = SourceStatus(
            source=self.name,
            configured=True,
            settings={
                k: v
                for k, v in (("region", self._region), ("endpoint_url", self._endpoint_url))
                if v
            },
        )

        def probe() -> None:
            self._client(self._region).list_secrets(MaxResults=1)

        try:
            await asyncio.to_thread(probe)
        except ClientError as exc:
            code = str((exc.response.get("Error") or {}).get("Code", "error"))
            # It answered: reachable, but this identity may not list secrets.
            return status.model_copy(
                update={"reachable": True, "authenticated": False, "detail": code}
            )
        except NoCredentialsError:
            return status.model_copy(update={"reachable": None, "detail": "no AWS identity"})
        except BotoCoreError as exc:
            return status.model_copy(update={"reachable": False, "detail": type(exc).__name__})
        return status.model_copy(update={"reachable": True, "authenticated": True, "detail": "ok"})


def _json_field(raw: str, field: str, where: str) -> str:
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ConfigurationError(
            f"credential {where} is not a JSON object", code="credential_invalid"
        )
    if field not in document:
        raise ConfigurationError(
            f"credential {where} has no field {field}", code="credential_missing"
        )
    return str(document[field])
