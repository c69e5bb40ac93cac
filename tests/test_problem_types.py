"""One error tree on both sides: each problem type is one class, with one title and one status."""

from __future__ import annotations

import importlib
import pkgutil
from collections import defaultdict

import service
import worker
from service.errors import InvalidParams, Problem, UnknownTechnique, problem_types
from service.failures import StepError, problem_for
from worker.sandbox import SandboxFailure, SandboxLimits, run_sandboxed

LIMITS = SandboxLimits(memory_bytes=1024**3, wall_seconds=60)


def _every_problem_class() -> list[type[Problem]]:
    """Import every module of both packages, then walk Problem's subclasses (none is registered)."""
    for package in (service, worker):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)
    return problem_types()


def test_each_problem_type_is_one_class_with_one_title_and_status() -> None:
    classes = _every_problem_class()
    by_slug: dict[str, list[str]] = defaultdict(list)
    by_title: dict[str, list[str]] = defaultdict(list)
    for kind in classes:
        by_slug[kind.slug].append(kind.__qualname__)
        by_title[kind.title].append(kind.slug)
        # Declared on the class itself: a subclass that inherited its parent's slug would share a type.
        assert {"slug", "title", "status"} <= set(vars(kind)), kind
        assert 400 <= kind.status < 600 and kind.title and kind.slug == kind.slug.lower(), kind

    assert {slug: names for slug, names in by_slug.items() if len(names) > 1} == {}
    assert {title: slugs for title, slugs in by_title.items() if len(slugs) > 1} == {}
    # Both sides are in the tree: the API's problems and those only a worker raises.
    both_sides = {"validation-error", "invalid-params", "invalid-dataset", "unsafe-model", "timeout"}
    assert both_sides <= set(by_slug)


def test_a_slug_from_the_sandbox_maps_back_to_its_class() -> None:
    for kind in _every_problem_class():
        assert problem_for(kind.slug) is kind
    assert problem_for("not-a-problem-type") is StepError


def _child_failure(**kwargs: object) -> SandboxFailure:
    arguments = {"model_path": "model.onnx", "output_path": "out.onnx", "datasets": {}, "signature": {}}
    try:
        run_sandboxed("engine.entries:run_technique", {**arguments, "threads": 1, **kwargs}, limits=LIMITS)
    except SandboxFailure as failure:
        return failure
    raise AssertionError("the step was expected to fail")


def test_a_failure_raised_in_the_sandbox_reaches_the_parent_as_the_same_problem() -> None:
    unknown = _child_failure(technique="quantize.nothing", params={})
    invalid = _child_failure(technique="quantize.dynamic", params={"weight_type": "qint4", "extra": 1})

    assert type(unknown.problem) is UnknownTechnique and "quantize.nothing" in unknown.detail
    document = invalid.document
    assert type(invalid.problem) is InvalidParams
    assert (document["title"], document["status"]) == (InvalidParams.title, InvalidParams.status)
    assert sorted(entry["loc"] for entry in document["errors"]) == [["extra"], ["weight_type"]]
    assert document["error_count"] == 2 and document["detail"].startswith("quantize.dynamic: ")
