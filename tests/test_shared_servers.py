"""No test may stop, restart or reconfigure the shared Postgres and Redis that `make test` points at.

Server lifecycle commands are allowed in one module only, tests/chaos/private_servers.py, whose
servers are private clusters and redis-server children on free ports (tests/chaos/test_outages.py
also checks at run time that the shared servers were the same processes before and after).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ALLOWED = TESTS / "chaos" / "private_servers.py"
# Commands that stop, restart or stall a whole Postgres or Redis server, whichever server they target.
LIFECYCLE = re.compile(
    r"\bpg_ctl(?:cluster)?\b|\bsystemctl\b|\bservice\s+(?:postgresql|redis)|/etc/init\.d/"
    r"|\bredis-server\b|\bSHUTDOWN\b|\bDEBUG\s+SLEEP\b|\bCLIENT\s+PAUSE\b|\bFLUSHALL\b|\bflushall\("
    r"|\bCONFIG\s+SET\b|\bconfig_set\(|\bpg_reload_conf\b|\bALTER\s+SYSTEM\b|\b(?:pkill|killall)\b"
)


def lifecycle_commands(path: Path) -> list[str]:
    """`file:line: text` for each string or called name in a module's code that is a lifecycle command."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value
        elif isinstance(node, ast.Attribute | ast.Name):
            text = f"{node.attr if isinstance(node, ast.Attribute) else node.id}("
        else:
            continue
        if LIFECYCLE.search(text):
            hits.append(f"{path.relative_to(TESTS.parent)}:{node.lineno}: {text}")
    return hits


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring nodes: prose may name a command without running it."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def test_only_the_private_server_module_runs_lifecycle_commands() -> None:
    scanned = [path for path in TESTS.rglob("*.py") if path != Path(__file__)]
    offenders = [hit for path in scanned if path != ALLOWED for hit in lifecycle_commands(path)]

    assert offenders == [], "only tests/chaos/private_servers.py may stop or start servers:\n" + "\n".join(
        offenders
    )


def test_the_scan_recognises_what_the_private_server_module_does() -> None:
    # The patterns are live: the module that does stop and start (its own) servers is flagged by them.
    found = "\n".join(lifecycle_commands(ALLOWED))

    for command in ("pg_ctl", "redis-server", "SHUTDOWN"):
        assert command in found, command
