"""The callback activity: one signed POST of an operation document."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from temporalio import activity

from gateway_core.callbacks import operation_secret, post_signed
from gateway_core.domain.operations import CallbackInput, CallbackOutcome
from gateway_core.error_codec import application_error
from gateway_core.errors import GatewayError


class CallbackActivities:
    """Holds the HTTP pool and the server's callback secret (never in workflow history).

    `http` enforces the outbound address policy (gateway_core.outbound.outbound_client);
    each delivery is signed with its operation's own secret, derived here.
    """

    def __init__(self, http: httpx.AsyncClient, secret: bytes) -> None:
        self._http = http
        self._secret = secret

    @activity.defn(name="deliver_callback")
    async def deliver(self, callback: CallbackInput) -> CallbackOutcome:
        body = callback.document.model_dump_json().encode()
        secret = operation_secret(self._secret, callback.document.operation_id).encode()
        try:
            status = await post_signed(self._http, callback.url, body, secret)
        except GatewayError as error:
            raise application_error(error, attempt=activity.info().attempt) from None
        return CallbackOutcome(
            delivered=True,
            status_code=status,
            attempts=activity.info().attempt,
            delivered_at=datetime.now(UTC),
        )
