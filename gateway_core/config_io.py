"""The gateway's configuration as one document, exported and imported all or nothing.

    version: 1
    models:  [ {id, provider, model, base_url, credential, config, ...}, ... ]
    chains:  [ {id, name, steps: [{model_id, max_retries, ...}], ...}, ... ]
    prompts: [ {id, name, description, content, tags}, ... ]

Workflows and knowledge bases join as further sections. Chains are written after models,
so a chain may name a model the same document creates. Entries carry what an
operator writes (no versions, no timestamps, no derived fields) and never a secret:
a model names where its credential lives, not the credential. Import validates the whole
document first and reports every problem in one error; then it creates, updates and
(with `prune`) deletes in one transaction, so a failure changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gateway_core.credentials.env_policy import EnvNamePolicy
from gateway_core.domain.chains import ChainCreate, ChainUpdate
from gateway_core.domain.models import ModelCreate, ModelUpdate
from gateway_core.domain.prompts import PromptCreate, PromptUpdate, prompt_variables
from gateway_core.errors import InvalidRequestError
from gateway_core.storage.chains import ChainRepository
from gateway_core.storage.database import Pool, SharedConnection
from gateway_core.storage.models import ModelRepository
from gateway_core.storage.prompts import PromptRepository
from gateway_core.templating import TemplateError

DOCUMENT_VERSION = 1
SECTIONS = ("models", "chains", "prompts")
_IMPORT_LOCK_ID = 0x504D5043
_MAX_PROBLEMS_SHOWN = 100

Entry = TypeVar("Entry", ModelCreate, ChainCreate, PromptCreate)


class ConfigError(InvalidRequestError):
    """A configuration document is invalid; the message lists every problem found."""

    default_code = "invalid_config"

    def __init__(self, problems: list[str]) -> None:
        shown = problems[:_MAX_PROBLEMS_SHOWN]
        listed = "; ".join(f"({number}) {text}" for number, text in enumerate(shown, 1))
        if len(problems) > len(shown):
            listed += f"; and {len(problems) - len(shown)} more"
        noun = "a problem" if len(problems) == 1 else f"{len(problems)} problems"
        super().__init__(f"the configuration has {noun}: {listed}")
        self.problems = problems


@dataclass(frozen=True)
class GatewayConfig:
    """A validated configuration document."""

    models: list[ModelCreate]
    prompts: list[PromptCreate]
    chains: list[ChainCreate] = field(default_factory=list)


class SectionReport(BaseModel):
    """What an import did (or, in a dry run, would do) to one kind of entity."""

    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    deleted: list[str] = []


class ImportReport(BaseModel):
    dry_run: bool
    models: SectionReport
    chains: SectionReport = SectionReport()
    prompts: SectionReport


# --- reading and writing documents -------------------------------------------------


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a few aliased lists nested in each other expand
    to billions of nodes (the "billion laughs"), from a document of a few hundred bytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
            line = event.start_mark.line + 1 if event.start_mark else "?"
            raise yaml.YAMLError(f"aliases (*name) are not accepted (line {line})")
        return super().compose_node(parent, index)


def load_document(text: str | bytes, *, json_only: bool = False) -> Any:
    """Parse JSON (when `json_only`) or YAML, which also reads JSON; ConfigError if neither."""
    try:
        return json.loads(text) if json_only else yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader
    except json.JSONDecodeError as error:
        raise ConfigError([f"the document is not valid JSON: {error}"]) from None
    except UnicodeDecodeError:  # json.loads of bytes that are not UTF-8 (YAML says ReaderError)
        raise ConfigError(["the document is not UTF-8 text"]) from None
    except yaml.YAMLError as error:
        raise ConfigError([f"the document is not valid YAML: {error}"]) from None


class _ConfigDumper(yaml.SafeDumper):
    """Writes multi-line text (prompt content) as literal blocks, readable in a diff."""


# Line breaks YAML would read back as "\n" (or a space) unless written as escapes.
_OTHER_BREAKS = frozenset("\r\x85\u2028\u2029")


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = None
    if _OTHER_BREAKS.intersection(text):
        style = '"'
    elif "\n" in text:
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_ConfigDumper.add_representer(str, _represent_text)


def dump_yaml(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_ConfigDumper, sort_keys=False, allow_unicode=True)


# --- validation --------------------------------------------------------------------


def parse_config(document: Any) -> GatewayConfig:
    """Validate a whole document; ConfigError lists every problem, not just the first."""
    problems: list[str] = []
    if not isinstance(document, dict):
        raise ConfigError(["the document must be a mapping with `version`, `models`, `prompts`"])
    if document.get("version") != DOCUMENT_VERSION:
        problems.append(f"version: must be {DOCUMENT_VERSION}, got {document.get('version')!r}")
    for key in document:
        if key != "version" and key not in SECTIONS:
            problems.append(f"{key}: unknown section (known: {', '.join(SECTIONS)})")
    models = _entries("models", document.get("models"), ModelCreate, problems)
    chains = _entries("chains", document.get("chains"), ChainCreate, problems)
    prompts = _entries("prompts", document.get("prompts"), PromptCreate, problems)
    for index, prompt in prompts:
        problems.extend(_template_problems(index, prompt))
    problems.extend(_chain_problems(models, chains))
    if problems:
        raise ConfigError(problems)
    return GatewayConfig(
        [model for _, model in models],
        [prompt for _, prompt in prompts],
        [chain for _, chain in chains],
    )


def _chain_problems(
    models: list[tuple[int, ModelCreate]], chains: list[tuple[int, ChainCreate]]
) -> list[str]:
    """Chain and model ids share one namespace, also inside one document."""
    model_ids = {model.id for _, model in models}
    return [
        f"chains[{index}] ({chain.id}): id: already the id of a model in this document"
        for index, chain in chains
        if chain.id in model_ids
    ]


def _entries(
    section: str, raw: Any, schema: type[Entry], problems: list[str]
) -> list[tuple[int, Entry]]:
    """The valid entries of a section with their index; problems of the others are added."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(f"{section}: must be a list")
        return []
    valid: list[tuple[int, Entry]] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(raw):
        where = _where(section, index, item)
        try:
            entry = schema.model_validate(item)
        except ValidationError as error:
            problems.extend(f"{where}: {_describe(detail)}" for detail in error.errors())
            continue
        if entry.id in first_index:
            problems.append(f"{where}: duplicate id (also {section}[{first_index[entry.id]}])")
            continue
        first_index[entry.id] = index
        valid.append((index, entry))
    return valid


def _where(section: str, index: int, item: Any) -> str:
    identifier = item.get("id") if isinstance(item, dict) else None
    return f"{section}[{index}]" + (f" ({identifier})" if isinstance(identifier, str) else "")


def _describe(detail: Any) -> str:
    location = ".".join(str(part) for part in detail.get("loc", ()))
    return f"{location}: {detail.get('msg', 'invalid')}" if location else detail.get("msg", "")


def _template_problems(index: int, prompt: PromptCreate) -> list[str]:
    try:
        prompt_variables(prompt.content)
    except TemplateError as error:
        return [f"prompts[{index}] ({prompt.id}): content: {p.describe()}" for p in error.problems]
    return []


# --- export and import -------------------------------------------------------------


def _entry_fields(entry: ModelCreate | ChainCreate | PromptCreate) -> dict[str, Any]:
    """An entry as the document holds it: id first, unset optional fields left out."""
    return {"id": entry.id, **entry.model_dump(mode="json", exclude_none=True, exclude={"id"})}


async def export_config(
    models: ModelRepository, prompts: PromptRepository, chains: ChainRepository
) -> dict[str, Any]:
    """The whole configuration as a document, entries ordered by id."""
    return {
        "version": DOCUMENT_VERSION,
        "models": [_entry_fields(e) for e in (await _current_models(models)).values()],
        "chains": [_entry_fields(e) for e in (await _current_chains(chains)).values()],
        "prompts": [_entry_fields(e) for e in (await _current_prompts(prompts)).values()],
    }


async def _current_chains(repository: ChainRepository) -> dict[str, ChainCreate]:
    return {
        chain.id: ChainCreate.model_validate(
            chain.model_dump(exclude={"version", "created_at", "updated_at"})
        )
        for chain in await repository.list()
    }


async def _current_models(repository: ModelRepository) -> dict[str, ModelCreate]:
    return {
        model.id: ModelCreate.model_validate(
            model.model_dump(exclude={"version", "created_at", "updated_at"})
        )
        for model in await repository.list()
    }


async def _current_prompts(repository: PromptRepository) -> dict[str, PromptCreate]:
    return {
        prompt.id: PromptCreate.model_validate(
            prompt.model_dump(exclude={"version", "variables", "created_at", "updated_at"})
        )
        for prompt in await repository.list_all()
    }


@dataclass(frozen=True)
class _Writer(Generic[Entry]):
    """How one section's entries are read, created, updated and deleted."""

    current: Callable[[], Awaitable[dict[str, Entry]]]
    create: Callable[[Entry], Awaitable[object]]
    update: Callable[[Entry], Awaitable[object]]
    delete: Callable[[str], Awaitable[None]]


async def import_config(
    pool: Pool,
    config: GatewayConfig,
    *,
    prune: bool = False,
    dry_run: bool = False,
    env_policy: EnvNamePolicy | None = None,
) -> ImportReport:
    """Make the stored configuration match `config` in one transaction.

    Entries not in the document stay, unless `prune` deletes them. Changed entries get
    a new version; identical ones are left alone. A dry run reports without writing.
    """
    async with pool.connection() as conn, conn.transaction():
        # Imports queue behind each other; the rest of the gateway keeps working.
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_IMPORT_LOCK_ID,))
        shared = SharedConnection(conn)
        models, prompts = ModelRepository(shared, env_policy), PromptRepository(shared)
        chains = ChainRepository(shared)
        chain_writer = _Writer[ChainCreate](
            current=lambda: _current_chains(chains),
            create=chains.create,
            update=lambda c: chains.update(c.id, ChainUpdate(**_without_id(c))),
            delete=chains.delete,
        )
        model_writer = _Writer[ModelCreate](
            current=lambda: _current_models(models),
            create=models.create,
            update=lambda m: models.update(m.id, ModelUpdate(**_without_id(m))),
            delete=models.delete,
        )
        prompt_writer = _Writer[PromptCreate](
            current=lambda: _current_prompts(prompts),
            create=prompts.create,
            update=lambda p: prompts.update(p.id, PromptUpdate(**_without_id(p))),
            delete=prompts.delete,
        )
        return ImportReport(
            dry_run=dry_run,
            models=await _sync(model_writer, config.models, prune=prune, dry_run=dry_run),
            chains=await _sync(chain_writer, config.chains, prune=prune, dry_run=dry_run),
            prompts=await _sync(prompt_writer, config.prompts, prune=prune, dry_run=dry_run),
        )


def _without_id(entry: BaseModel) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in type(entry).model_fields if name != "id"}


async def _sync(
    writer: _Writer[Entry], wanted: list[Entry], *, prune: bool, dry_run: bool
) -> SectionReport:
    """Create, update and (when pruning) delete so the section holds exactly `wanted`."""
    current = await writer.current()
    report = SectionReport()
    for entry in wanted:
        existing = current.get(entry.id)
        if existing is None:
            report.created.append(entry.id)
            if not dry_run:
                await writer.create(entry)
        elif _entry_fields(existing) == _entry_fields(entry):
            report.unchanged.append(entry.id)
        else:
            report.updated.append(entry.id)
            if not dry_run:
                await writer.update(entry)
    if prune:
        for stale in sorted(set(current) - {entry.id for entry in wanted}):
            report.deleted.append(stale)
            if not dry_run:
                await writer.delete(stale)
    return report
