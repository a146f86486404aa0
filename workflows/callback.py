"""CallbackWorkflow: delivers an operation's document to its callback URL, with retries.

It runs as an abandoned child of the operation's run, so the operation's own status
does not wait for a slow receiver; its outcome is shown on the operation.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from gateway_core.domain.operations import CallbackInput, CallbackOutcome

DELIVER_ACTIVITY = "deliver_callback"
MAX_ATTEMPTS = 6


@workflow.defn(name="CallbackWorkflow")
class CallbackWorkflow:
    @workflow.run
    async def run(self, callback: CallbackInput) -> CallbackOutcome:
        try:
            outcome: CallbackOutcome = await workflow.execute_activity(
                DELIVER_ACTIVITY,
                callback,
                start_to_close_timeout=timedelta(seconds=15),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(minutes=5),
                    maximum_attempts=MAX_ATTEMPTS,
                ),
                result_type=CallbackOutcome,
            )
        except ActivityError as error:
            cause = error.cause
            return CallbackOutcome(
                delivered=False,
                attempts=MAX_ATTEMPTS,
                error=str(cause.message if cause and hasattr(cause, "message") else error),
            )
        return outcome
