"""load_points: the sphere, the cube and MNIST through one function, reproducible from the seed."""

import numpy as np
import pytest
from test_data_mnist import write_split

from ntkdepth.data import (
    canonical_projection,
    load_points,
    point_source,
    sample_cube,
    sample_on_sphere,
    sample_sphere,
)


def test_sphere_and_cube_match_their_samplers_and_split_off_held_out_points():
    p = load_points("sphere", 5, 3, dim=4, held_out=2)
    ref = sample_sphere(np.random.default_rng(3), 7, 4)
    np.testing.assert_array_equal(np.concatenate([p.x, p.held_out]), ref)
    assert p.x.shape == (5, 4) and p.held_out.shape == (2, 4) and p.labels is None
    np.testing.assert_allclose(np.linalg.norm(p.x, axis=1), 1.0, rtol=1e-15)
    c = load_points("cube", 6, [1, 2], dim=3)
    np.testing.assert_array_equal(c.x, canonical_projection(sample_cube(np.random.default_rng([1, 2]), 6, 3)))
    raw = load_points("cube", 6, [1, 2], dim=3, on_sphere=False).x
    assert np.all(np.abs(raw) <= 1) and not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


def test_a_generator_seed_is_advanced_like_the_samplers_do():
    a, b = np.random.default_rng(0), np.random.default_rng(0)
    first, second = load_points("sphere", 3, a, dim=5).x, load_points("sphere", 4, a, dim=5).x
    np.testing.assert_array_equal(first, sample_sphere(b, 3, 5))
    np.testing.assert_array_equal(second, sample_sphere(b, 4, 5))


def test_mnist_draws_from_the_folder_and_names_a_request_too_large(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=30, dtype=np.uint8)
    write_split(tmp_path, "test", images, labels)
    p = load_points("mnist", 8, [4, 8], held_out=3, data_dir=tmp_path)
    ref = sample_on_sphere(np.random.default_rng([4, 8]), images, labels, 11)
    np.testing.assert_array_equal(np.concatenate([p.x, p.held_out]), ref.x)
    np.testing.assert_array_equal(p.indices, ref.indices)
    assert p.source.split == "test" and p.source.size == 30 and p.source.dim == 784
    with pytest.raises(ValueError, match="31 points requested.*holds 30 images"):
        point_source("mnist", data_dir=tmp_path, need=31)


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="disk", n=3, dim=2), "unknown dataset 'disk'"),
    (dict(name="sphere", n=3), "needs its dimension"),
    (dict(name="sphere", n=0, dim=2), "n must be an integer >= 1"),
    (dict(name="sphere", n=3, dim=2, on_sphere=False), "always lie on the sphere"),
])
def test_bad_requests_name_the_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_points(seed=0, **kwargs)
