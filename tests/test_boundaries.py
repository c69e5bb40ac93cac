"""Import boundaries: the API never imports the ML stack or the worker; the worker reaches rows only
through its adapter and the domain services (DESIGN §1, §6)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from service.db import Base


def test_api_imports_no_ml_libraries_and_no_worker_code() -> None:
    probe = (
        "import sys, service.main, service.cli.main\n"
        "service.main.create_app()\n"
        "heavy = {'torch', 'onnx', 'onnxruntime', 'tensorrt', 'worker'}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == ""


# Worker modules reach the database only through this adapter and the domain services (DESIGN §6).
WORKER = Path(__file__).resolve().parents[1] / "worker"
ADAPTER = WORKER / "records.py"
SESSION_NAMES = frozenset({"new_session", "get_db", "Session", "sessionmaker", "scoped_session"})


def database_reach(source: str) -> list[str]:
    """What a module does that only the adapter may: open sessions, build queries, import ORM classes.

    Imports under `if TYPE_CHECKING:` are left out: an annotation naming a row type reads nothing.
    """
    found: list[str] = []
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if _is_sqlalchemy(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if (
                    _is_sqlalchemy(node.module)
                    or alias.name in SESSION_NAMES
                    or _is_row_class(node.module, alias.name)
                ):
                    found.append(f"from {node.module} import {alias.name}")
        elif isinstance(node, ast.Attribute) and node.attr in SESSION_NAMES:
            found.append(f".{node.attr}")
    return found


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for orelse in node.orelse for n in [orelse, *_runtime_nodes(orelse)])
            continue
        yield node
        yield from _runtime_nodes(node)


def _is_sqlalchemy(module: str) -> bool:
    # Its exception types are fine: the pipeline tells a lost database from a failed job.
    return module.split(".")[0] == "sqlalchemy" and module != "sqlalchemy.exc"


def _is_row_class(module: str, name: str) -> bool:
    if module.split(".")[0] != "service":
        return False
    value = getattr(importlib.import_module(module), name, None)
    return isinstance(value, type) and issubclass(value, Base)


def test_the_boundary_check_catches_sessions_queries_and_row_classes() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from service.db import new_session\n"
        "from service.jobs.orm import Job, JobStatus\n"
        "from sqlalchemy import update\n"
        "from sqlalchemy.exc import OperationalError\n"
        "import service.db\n"
        "if TYPE_CHECKING:\n"
        "    from service.models.orm import Model\n"
        "def f():\n"
        "    with service.db.new_session() as s:\n"
        "        from service.artifacts.orm import Artifact\n"
    )

    assert database_reach(source) == [
        "from service.db import new_session",
        "from service.jobs.orm import Job",
        "from sqlalchemy import update",
        ".new_session",
        "from service.artifacts.orm import Artifact",
    ]


def test_worker_modules_reach_the_database_only_through_the_adapter() -> None:
    offenders = {
        str(path.relative_to(WORKER.parent)): reach
        for path in sorted(WORKER.rglob("*.py"))
        if path != ADAPTER and (reach := database_reach(path.read_text()))
    }

    assert offenders == {}


# The sandboxed side (DESIGN §6): what reads or runs an untrusted model imports neither the worker's
# database/Celery side nor anything that reaches a server; the child it runs in has no network anyway.
ENGINE = WORKER.parent / "engine"
SERVER_SIDE = frozenset({"worker", "sqlalchemy", "celery", "kombu", "redis", "psycopg", "boto3", "httpx"})
SERVER_MODULES = frozenset(
    {"service.db", "service.orm", "service.queue", "service.storage", "service.settings"}
)


def server_reach(source: str) -> list[str]:
    """Imports a sandboxed module must not make: the worker package, database, broker, store, settings."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from service import db` names service.db: check the module and each name under it.
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        found += [n.split(".")[0] if n.split(".")[0] in SERVER_SIDE else n for n in names if _server_side(n)]
    return sorted(set(found))


def _server_side(name: str) -> bool:
    return name.split(".")[0] in SERVER_SIDE or name in SERVER_MODULES


def test_the_engine_check_catches_worker_and_server_imports() -> None:
    source = "import celery\nfrom worker import records\nfrom service import db\n" + (
        "from service.errors import Problem\n"
    )

    assert server_reach(source) == ["celery", "service.db", "worker"]


def test_engine_modules_import_nothing_from_the_worker_or_the_servers() -> None:
    offenders = {
        str(path.relative_to(ENGINE.parent)): reach
        for path in sorted(ENGINE.rglob("*.py"))
        if (reach := server_reach(path.read_text()))
    }

    assert offenders == {}


def test_the_sandbox_child_loads_no_worker_or_server_module() -> None:
    # Every technique the catalog names, imported the way the child imports it.
    probe = (
        "import importlib, sys\n"
        "import engine.child, engine.entries\n"
        "from service.catalog import CATALOG\n"
        "for spec in CATALOG.values(): importlib.import_module(spec.implementation)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(SERVER_SIDE)!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == ""
