"""Every catalog entry resolves to a technique module whose `run` takes that entry's params model."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import typing
from pathlib import Path

from engine.contract import StepContext, StepOutcome, Technique
from engine.techniques.bindings import BINDINGS
from service.catalog import CATALOG

ROOT = Path(__file__).resolve().parents[2]


def test_every_catalog_entry_runs_a_module_that_accepts_its_params() -> None:
    expected = list(inspect.signature(Technique.run).parameters)[1:]  # without `self`
    for name, spec in CATALOG.items():
        run = importlib.import_module(spec.implementation).run
        hints = typing.get_type_hints(run)

        assert list(inspect.signature(run).parameters) == expected, name
        assert issubclass(spec.params, hints["params"]), (name, spec.params, hints["params"])
        assert (hints["model_path"], hints["output_path"]) == (Path, Path), name
        assert (hints["ctx"], hints["return"]) == (StepContext, StepOutcome), name


def test_the_table_mypy_checks_is_the_catalog() -> None:
    assert sorted(BINDINGS) == sorted(CATALOG)
    for name, binding in BINDINGS.items():
        assert typing.cast(typing.Any, binding.module).__name__ == CATALOG[name].implementation, name
        assert binding.params is CATALOG[name].params, name


def test_mypy_refuses_a_module_bound_to_params_its_run_does_not_take(tmp_path: Path) -> None:
    probe = tmp_path / "wrong_binding.py"
    probe.write_text(
        "from service.catalog.quantize import DynamicQuantParams\n"
        "from engine.contract import TechniqueBinding\n"
        "from engine.techniques.prune import nm as prune_nm\n"
        "WRONG = TechniqueBinding[DynamicQuantParams](prune_nm, DynamicQuantParams)\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", str(probe)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    refusal = 'incompatible type Module; expected "Technique[DynamicQuantParams]"'
    assert refusal in result.stdout, result.stdout
