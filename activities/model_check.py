"""The worker's check that a run's model is the stored model version it names.

A ChatWorkflow's input carries the resolved model (provider, base URL, credential
reference). Anyone who can start a workflow on the task queue could put an attacker's
base URL next to a real credential reference, so before any credential is resolved the
worker compares where the run would send it with the stored version of that model and
refuses a mismatch. Versions are immutable, so a checked version is remembered.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol

from gateway_core.domain.chat import ResolvedModel
from gateway_core.domain.models import ModelVersion
from gateway_core.errors import NotFoundError, PermissionDeniedError

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
