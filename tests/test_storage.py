"""Stored files (ntkdepth.storage): digests of arrays, JSON records written whole or not at all."""

import hashlib
import json

import numpy as np
import pytest

from ntkdepth import storage
from ntkdepth.storage import array_digest, write_json


def test_array_digest_is_the_sha256_of_dtype_shape_and_bytes():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    expected = hashlib.sha256(b"<f4(2, 3)" + a.tobytes()).hexdigest()
    assert array_digest(a, length=None) == expected and array_digest(a) == expected[:16]
    # The same bytes in another shape or dtype, or a transposed view, are other arrays.
    assert len({array_digest(a), array_digest(a.reshape(3, 2)), array_digest(a.T), array_digest(a.view(np.int32))}) == 4
    assert array_digest(a, a) != array_digest(a)


def test_write_json_writes_a_record_whole_and_announces_it(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(storage, "write_hooks", [seen.append])
    path = tmp_path / "record.json"
    for sync in (False, True):
        write_json(path, {"done": np.array([[0, 1]]), "loss": np.inf, "complete": sync}, sync=sync)
        assert json.loads(path.read_text()) == {"done": [[0, 1]], "loss": "inf", "complete": sync}
    assert seen == [path, path] and sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_a_failed_json_write_leaves_the_previous_record(tmp_path):
    path = tmp_path / "record.json"
    write_json(path, {"done": []}, sort_keys=True)
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_json(path, {"done": object()})
    assert json.loads(path.read_text()) == {"done": []} and [p.name for p in tmp_path.iterdir()] == ["record.json"]
