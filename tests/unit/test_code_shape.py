"""The layering and size rules of DESIGN.md, held by the code itself."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway_api", "gateway_core", "temporal_workers", "activities", "workflows")
MAX_FUNCTION_LINES = 50
# Routers speak HTTP only: storage, caches and Temporal are reached through services.
ROUTER_FORBIDDEN_IMPORTS = ("psycopg", "redis", "temporalio")


def _sources(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


def _imported_modules(tree: ast.AST) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_routers_import_no_storage_cache_or_temporal_client() -> None:
    offenders = []
    routers = _sources("gateway_api/routers")
    assert routers, "no router modules found"
    for path in routers:
        for module in _imported_modules(ast.parse(path.read_text())):
            if module.split(".")[0] in ROUTER_FORBIDDEN_IMPORTS:
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def test_services_import_no_fastapi() -> None:
    offenders = []
    for path in _sources("gateway_api/services"):
        for module in _imported_modules(ast.parse(path.read_text())):
            if module.split(".")[0] in ("fastapi", "starlette"):
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def test_no_function_is_longer_than_fifty_lines() -> None:
    long_functions = []
    for path in _sources(*PACKAGES):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert long_functions == []
