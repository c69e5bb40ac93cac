"""Uploaded models a job's steps name besides the job's own (distillation's student and teacher).

Each must be the tenant's (404 otherwise) and ready (409 while pending or rejected); a student must
take the teacher's inputs and give outputs of the teacher's count and shapes (422), all known from
the signatures ingest recorded.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from service.catalog import CATALOG, referenced_model_ids
from service.catalog.distill import DistillParams
from service.errors import Conflict, IncompatibleStudent, InvalidParams, NotFound
from service.models import service as models_service
from service.models.orm import Model, ModelStatus


def check_step_models(
    *, session: Session, tenant_id: uuid.UUID, model: Model, steps: list[dict[str, Any]]
) -> None:
    """404/409/422 for a step's model references that cannot work; nothing when all can."""
    for index, step in enumerate(steps):
        named = {
            value: _ready(session, tenant_id, value, index) for value in referenced_model_ids(step["params"])
        }
        params = CATALOG[step["technique"]].params.model_validate(step["params"])
        if isinstance(params, DistillParams):
            _check_distill(params, index, model, named)


def _ready(session: Session, tenant_id: uuid.UUID, value: str, index: int) -> Model:
    try:
        model_id = uuid.UUID(value)
    except ValueError:
        raise InvalidParams(f"step {index}: '{value}' is not a model id", step=index) from None
    try:
        model = models_service.get_model(session=session, tenant_id=tenant_id, model_id=model_id)
    except NotFound:
        raise NotFound(f"step {index}: model {model_id} does not exist", step=index) from None
    if model.status != ModelStatus.READY:
        raise Conflict(
            f"step {index}: model {model_id} is {model.status}; only a ready model can take part",
            step=index,
            model_error=model.error,
        )
    return model


def _check_distill(params: DistillParams, index: int, model: Model, named: dict[str, Model]) -> None:
    where = f"step {index} (distill)"
    if index == 0 and params.student_is_input() and params.teacher_model_id is None:
        raise InvalidParams(
            f"{where}: the job's model would be both teacher and student: name `student_model_id`, derive "
            'one with `student: {"sparsity": 0.5}`, or put distill after a step that makes the student '
            "(such as prune.structured)",
            step=index,
        )
    teacher = named[params.teacher_model_id] if params.teacher_model_id else model
    if params.student_model_id is None or not teacher.signature:
        return
    student = named[params.student_model_id]
    reason = incompatibility(teacher.signature, student.signature or {})
    if reason:
        raise IncompatibleStudent(f"{where}: student model {student.id} {reason}", step=index)


def incompatibility(teacher: dict[str, Any], student: dict[str, Any]) -> str | None:
    """Why a student's signature cannot stand in for the teacher's; None when it can."""
    want_in = {spec["name"]: spec for spec in teacher.get("inputs", [])}
    got_in = {spec["name"]: spec for spec in student.get("inputs", [])}
    if set(want_in) != set(got_in):
        return f"takes inputs {sorted(got_in)}; the teacher takes {sorted(want_in)}"
    for name, spec in want_in.items():
        if got_in[name]["dtype"] != spec["dtype"]:
            return f"takes input '{name}' as {got_in[name]['dtype']}; the teacher takes {spec['dtype']}"
    want_out, got_out = teacher.get("outputs", []), student.get("outputs", [])
    if len(want_out) != len(got_out):
        return f"has {len(got_out)} outputs; the teacher has {len(want_out)}"
    for position, (want, got) in enumerate(zip(want_out, got_out, strict=True)):
        if not _same_shape(want.get("shape"), got.get("shape")):
            return f"output {position} has shape {got.get('shape')}; the teacher's has {want.get('shape')}"
    return None


def _same_shape(want: list[Any] | None, got: list[Any] | None) -> bool:
    """Same rank and the same size wherever both fix one (the batch dim aside)."""
    if want is None or got is None:
        return True
    if len(want) != len(got):
        return False
    pairs = list(zip(want, got, strict=True))[1:]
    return all(not (isinstance(a, int) and isinstance(b, int)) or a == b for a, b in pairs)
