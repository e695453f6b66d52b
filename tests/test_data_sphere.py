import numpy as np
import pytest

from ntkdepth.data import canonical_projection, sample_cube, sample_sphere


def test_sphere_samples_are_unit_vectors_with_uniform_moments(rng):
    x = sample_sphere(rng, 20000, 3)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-14)
    # Uniform on S^2: E[x] = 0 and E[x x^T] = I / 3 (Monte Carlo, ~5 standard errors).
    assert np.all(np.abs(x.mean(0)) < 5 * np.sqrt(1 / 3 / 20000))
    np.testing.assert_allclose(x.T @ x / 20000, np.eye(3) / 3, atol=0.015)


def test_canonical_projection_normalizes_and_keeps_directions(rng):
    x = sample_cube(rng, 5, 4)
    u = canonical_projection(x)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(u * np.linalg.norm(x, axis=1, keepdims=True), x, rtol=1e-14)


@pytest.mark.parametrize(
    "x,match",
    [
        ([[1.0, 0.0], [0.0, 0.0]], "row 1 is the zero vector"),
        ([[1.0, 2.0], [0.0, 1.0], [2.0, 4.0]], "rows 0 and 2 are colinear.*same point"),
        ([[1.0, 2.0], [-3.0, -6.0]], "rows 0 and 1 are colinear.*antipodal"),
        ([[1.0, np.nan]], "NaN or inf at row 0, column 1"),
    ],
)
def test_canonical_projection_names_the_offending_rows(x, match):
    with pytest.raises(ValueError, match=match):
        canonical_projection(np.array(x))
