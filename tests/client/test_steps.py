"""Parsing of `--step` values and of the job request the CLI builds."""

from __future__ import annotations

import pytest

from service.cli.compress import build_request
from service.cli.steps import StepSyntaxError, parse_step


def test_values_are_json_when_they_parse_else_strings() -> None:
    step = parse_step(
        'quantize.static:dataset_id=abc-1,per_channel=true,n=3,f=0.5,s="x",ops=["MatMul","Gemm"],e='
    )

    assert step == {
        "technique": "quantize.static",
        "params": {
            "dataset_id": "abc-1",
            "per_channel": True,
            "n": 3,
            "f": 0.5,
            "s": "x",
            "ops": ["MatMul", "Gemm"],
            "e": "",
        },
    }


def test_nested_objects_and_quoted_commas_survive() -> None:
    step = parse_step('distill:finetune={"epochs": 2, "lr": 0.01},name="a,b"')

    assert step["params"] == {"finetune": {"epochs": 2, "lr": 0.01}, "name": "a,b"}


@pytest.mark.parametrize("spec", ["", ":a=1", "x:novalue", "x:a=[1,2", 'x:a="open'])
def test_malformed_steps_are_refused(spec: str) -> None:
    with pytest.raises(StepSyntaxError):
        parse_step(spec)


def test_request_body_from_options() -> None:
    body = build_request(
        "m1",
        ["prune.magnitude:sparsity=0.5", "quantize.dynamic"],
        eval_dataset="d1",
        metric="top1",
        max_accuracy_drop=0.01,
        batch_sizes="1,8",
        callback_url="https://ci.example/hook",
    )

    assert body == {
        "model_id": "m1",
        "steps": [
            {"technique": "prune.magnitude", "params": {"sparsity": 0.5}},
            {"technique": "quantize.dynamic", "params": {}},
        ],
        "evaluation": {
            "dataset_id": "d1",
            "metric": "top1",
            "max_accuracy_drop": 0.01,
            "batch_sizes": [1, 8],
        },
        "callback_url": "https://ci.example/hook",
    }
