"""The worker's checks that a run sends credentials only where stored versions say.

Models: the run's model must be the stored model version it names. Workflows: an
`http_request` step's credential goes only to the origin the stored workflow version's
step names (see `HttpCredentialCheck`).

A ChatWorkflow's or EmbeddingWorkflow's input carries the resolved model (provider, base
URL, credential reference). Anyone who can start a workflow on the task queue could put an
attacker's base URL next to a real credential reference, so before any credential is
resolved the worker compares where the run would send it with the stored version of that
model and refuses a mismatch. Versions are immutable, so a checked version is remembered.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol
from urllib.parse import urlsplit

from gateway_core.domain.chat import ResolvedModel
from gateway_core.domain.models import ModelVersion
from gateway_core.errors import NotFoundError, PermissionDeniedError
from gateway_core.userflows.definition import HttpRequestStep, WorkflowVersion, walk_steps
from gateway_core.userflows.runs import HttpRequestInput

MAX_REMEMBERED = 4096


class ModelVersions(Protocol):
    """Where stored model versions are read (the model repository)."""

    async def get_version(self, entity_id: str, version: int) -> ModelVersion: ...


class ModelMismatchError(PermissionDeniedError):
    """The run's model differs from the stored version it names: refused, not retried."""

    default_code = "model_version_mismatch"


def _destination_of_run(model: ResolvedModel) -> tuple[Any, ...]:
    credential = model.credential.model_dump() if model.credential else None
    return (
        model.provider,
        model.upstream_model,
        model.base_url,
        credential,
        model.api_version,
        model.deployment,
        model.region,
        model.auth,
    )


def _destination_stored(version: ModelVersion) -> tuple[Any, ...]:
    credential = version.credential.model_dump() if version.credential else None
    return (
        version.provider,
        version.model,
        version.base_url,
        credential,
        version.api_version,
        version.deployment,
        version.region,
        version.auth,
    )


class ModelVersionCheck:
    """Refuses a run whose model does not match the stored version it names."""

    def __init__(self, versions: ModelVersions) -> None:
        self._versions = versions
        self._known: OrderedDict[tuple[str, int], tuple[Any, ...]] = OrderedDict()

    async def verify(self, model: ResolvedModel) -> None:
        """Return when `model` is its stored version; ModelMismatchError otherwise."""
        key = (model.id, model.version)
        stored = self._known.get(key)
        if stored is None:
            try:
                version = await self._versions.get_version(model.id, model.version)
            except NotFoundError:
                raise self._mismatch(model) from None
            stored = _destination_stored(version)
            self._known[key] = stored
            if len(self._known) > MAX_REMEMBERED:
                self._known.popitem(last=False)
        if _destination_of_run(model) != stored:
            raise self._mismatch(model)

    @staticmethod
    def _mismatch(model: ResolvedModel) -> ModelMismatchError:
        return ModelMismatchError(
            f"model {model.id!r} version {model.version} of this run is not the stored "
            "model version; the run was refused"
        )


class WorkflowVersions(Protocol):
    """Where stored workflow versions are read (the workflow repository)."""

    async def get_version(self, entity_id: str, version: int) -> WorkflowVersion: ...


def _fixed_origin(url_template: str) -> tuple[str, str] | None:
    """The (scheme, host:port) a URL template always names; None when a placeholder may
    change it (the operator then chose to let the input pick the destination)."""
    literal = url_template.split("${", 1)[0]
    if literal != url_template:
        _, separator, rest = literal.partition("://")
        if not separator or not any(mark in rest for mark in "/?#"):
            return None
    parts = urlsplit(literal)
    return parts.scheme.lower(), parts.netloc.lower()


class HttpCredentialCheck:
    """Refuses an http_request whose credential use is not its stored workflow step's:
    same credential, same method, and the step's fixed origin."""

    def __init__(self, versions: WorkflowVersions) -> None:
        self._versions = versions
        self._steps: OrderedDict[tuple[str, int, str], HttpRequestStep | None] = OrderedDict()

    async def verify(self, inp: HttpRequestInput) -> None:
        if inp.credential is None:
            return
        stored = await self._stored_step(inp)
        if stored is None or stored.auth is None or stored.method != inp.method:
            raise self._mismatch(inp)
        if stored.auth.model_dump(mode="json") != inp.credential:
            raise self._mismatch(inp)
        origin = _fixed_origin(stored.url)
        parts = urlsplit(inp.url)
        if origin is not None and origin != (parts.scheme.lower(), parts.netloc.lower()):
            raise self._mismatch(inp)

    async def _stored_step(self, inp: HttpRequestInput) -> HttpRequestStep | None:
        if inp.workflow_id is None or inp.workflow_version is None or inp.step is None:
            return None
        key = (inp.workflow_id, inp.workflow_version, inp.step)
        if key not in self._steps:
            try:
                version = await self._versions.get_version(inp.workflow_id, inp.workflow_version)
            except NotFoundError:
                return None
            named = [s for _, s in walk_steps(version.steps) if s.name == inp.step]
            found = named[0] if named and isinstance(named[0], HttpRequestStep) else None
            self._steps[key] = found
            if len(self._steps) > MAX_REMEMBERED:
                self._steps.popitem(last=False)
        return self._steps[key]

    @staticmethod
    def _mismatch(inp: HttpRequestInput) -> ModelMismatchError:
        return ModelMismatchError(
            f"step {inp.step!r} of this run does not send its credential where the stored "
            "workflow version says; the request was refused",
            code="workflow_version_mismatch",
        )
