"""Dataset uploads are read value by value: non-finite floats and non-numeric arrays are 422 naming
the array, damaged or inflating archives are refused, labels outside the model's classes are 422."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.chaos.live import drop_tenant
from tests.fixtures.api import Api, new_key

PROBLEMS = "https://modelpress.dev/problems/"
GOOD = np.zeros((4, 1, 8, 8), dtype=np.float32)


class Uploader:
    """Posts .npz bytes as one tenant."""

    def __init__(self, client: TestClient, key: str) -> None:
        self.client, self.headers = client, {"Authorization": f"Bearer {key}"}

    def post(self, data: bytes) -> Any:
        return self.client.post("/v1/datasets", files={"file": ("data.npz", data)}, headers=self.headers)


@pytest.fixture(scope="module")
def uploader(app_client: TestClient) -> Iterator[Uploader]:
    key = new_key()
    yield Uploader(app_client, key)
    drop_tenant(key)


def npz(compressed: bool = False, **arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def _refused(response: Any, array: str | None, slug: str = "invalid-dataset") -> str:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["type"] == PROBLEMS + slug, body
    if array is not None:
        assert f"'{array}'" in body["detail"] and body.get("array") == array, body
    return str(body["detail"])


def _with(
    index: int, value: float, dtype: str = "float32", shape: tuple[int, ...] = (4, 1, 8, 8)
) -> np.ndarray:
    array = np.zeros(shape, dtype=dtype)
    array.flat[index] = value
    return array


NON_FINITE = {
    "NaN first": _with(0, np.nan),
    "+inf last": _with(-1, np.inf),
    "-inf middle": _with(100, -np.inf),
    "float16 inf": _with(5, np.inf, "float16"),
    "float64 NaN": _with(7, np.nan, "float64"),
    "big-endian NaN": _with(3, np.nan, ">f4"),
    "NaN past the first MiB": _with(-1, np.nan, shape=(5000, 1, 8, 8)),
    "Fortran-order NaN": np.asfortranarray(_with(9, np.nan)),
    "signalling-NaN bits": np.frombuffer(struct.pack("<I", 0x7F800001) * 256, np.float32).reshape(4, 1, 8, 8),
}  # fmt: skip


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
@pytest.mark.parametrize("case", sorted(NON_FINITE))
def test_non_finite_floats_are_refused_naming_the_array(
    uploader: Uploader, case: str, compressed: bool
) -> None:
    detail = _refused(
        uploader.post(npz(compressed, x=NON_FINITE[case], labels=np.zeros(len(NON_FINITE[case])))), "x"
    )
    assert "non-finite" in detail


def test_non_finite_labels_are_refused_too(uploader: Uploader) -> None:
    _refused(uploader.post(npz(x=GOOD, labels=np.array([0.0, np.inf, 1.0, 2.0]))), "labels")


@pytest.mark.parametrize(
    "array",
    [
        np.array(["a", "b", "c", "d"]),
        np.array([b"a", b"b", b"c", b"d"]),
        np.zeros(4, dtype=np.complex64),
        np.zeros(4, dtype=np.clongdouble),
        np.zeros(4, dtype=np.longdouble),
        np.zeros(4, dtype=[("a", "<f4"), ("b", "<i4")]),
        np.zeros(4, dtype="datetime64[s]"),
        np.zeros(4, dtype="timedelta64[s]"),
        np.zeros(4, dtype="V8"),
    ],
    ids=lambda array: str(array.dtype),
)
def test_non_numeric_arrays_are_refused_naming_them(uploader: Uploader, array: np.ndarray) -> None:
    _refused(uploader.post(npz(x=GOOD, odd=array)), "odd")


def test_an_array_shorter_than_its_header_is_refused(uploader: Uploader) -> None:
    data = npz(x=GOOD)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        member = archive.read("x.npy")
    truncated = io.BytesIO()
    with zipfile.ZipFile(truncated, "w") as archive:
        archive.writestr("x.npy", member[:-64])
    _refused(uploader.post(truncated.getvalue()), "x")


def test_an_array_longer_than_its_header_is_refused(uploader: Uploader) -> None:
    with zipfile.ZipFile(io.BytesIO(npz(x=GOOD))) as archive:
        member = archive.read("x.npy")
    longer = io.BytesIO()
    with zipfile.ZipFile(longer, "w") as archive:
        archive.writestr("x.npy", member + bytes(64))
    _refused(uploader.post(longer.getvalue()), "x")


def test_an_inflation_bomb_is_refused_before_it_is_inflated(uploader: Uploader) -> None:
    # 512 MiB of zeros deflates to about half a MiB: a 1000:1 archive.
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1,), np.float32))
    header["shape"] = (128 * 1024 * 1024,)
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, header)
    bomb = io.BytesIO()
    with (
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("x.npy", "w", force_zip64=True) as member,
    ):
        member.write(head.getvalue())
        zeros = bytes(1 << 20)
        for _ in range(512):
            member.write(zeros)
    assert len(bomb.getvalue()) < 2 * 1024 * 1024

    detail = _refused(uploader.post(bomb.getvalue()), None)
    assert "inflate" in detail


def test_a_clean_dataset_records_integer_ranges(uploader: Uploader) -> None:
    labels = np.array([3, 0, 9, 2], dtype=np.int64)

    response = uploader.post(
        npz(True, x=np.random.default_rng(0).random((4, 1, 8, 8), np.float32), labels=labels)
    )

    assert response.status_code == 201, response.text
    assert response.json()["arrays"]["labels"] == {"dtype": "int64", "shape": [4], "min": 0, "max": 9}


@pytest.fixture
def ready_mlp(api: Api, mlp_onnx: Path) -> dict[str, Any]:
    return api.wait_model(api.upload("models", mlp_onnx).json()["id"])


@pytest.mark.parametrize(
    "labels", [[0, 1, 10, 2], [-1, 0, 1, 2], [0, 1, 2, 1_000_000]], ids=["10", "-1", "1e6"]
)
def test_labels_outside_the_models_classes_are_422_at_submit(
    api: Api, ready_mlp: dict[str, Any], tmp_path: Path, labels: list[int]
) -> None:
    path = tmp_path / "labels.npz"
    path.write_bytes(npz(x=GOOD, labels=np.array(labels, dtype=np.int64)))
    dataset = api.upload("datasets", path).json()
    finetune = {"dataset_id": dataset["id"], "epochs": 1}
    bodies = [
        {"steps": [{"technique": "quantize.dynamic"}], "evaluation": {"dataset_id": dataset["id"]}},
        {"steps": [{"technique": "quantize.auto", "params": {"dataset_id": dataset["id"]}}]},
        {"steps": [{"technique": "prune.magnitude", "params": {"finetune": finetune}}]},
    ]
    for body in bodies:
        response = api.post("/v1/jobs", json={"model_id": ready_mlp["id"], **body})
        detail = _refused(response, None, "dataset-mismatch")
        assert f"from {min(labels)} to {max(labels)}" in detail and "10 classes" in detail
    regression = {"dataset_id": dataset["id"], "metric": "mse"}
    # As regression targets the same integers are fine: nothing is indexed by them.
    body = {
        "model_id": ready_mlp["id"],
        "steps": [{"technique": "quantize.dynamic"}],
        "evaluation": regression,
    }
    assert api.post("/v1/jobs", json=body).status_code == 202
