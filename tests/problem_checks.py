"""Checks shared by the tests of reduced problems (imported as ``tests.problem_checks``)."""

from __future__ import annotations

import numpy as np

from reduced_pde.problem import NoInteraction, ReducedProblem


def assert_gradients_match_finite_differences(problem: ReducedProblem, x: np.ndarray, h: float = 1e-6,
                                              atol: float = 1e-7) -> None:
    """``reduced_potential_gradient`` and ``interaction_features_gradient`` at points x (M, dim) against
    central differences of ``reduced_potential`` and the low-rank features with step h in each
    coordinate (the callers state the error they expect next to ``atol``)."""
    dim = len(problem.coordinate_names)
    grad_v = problem.reduced_potential_gradient(x)
    grad_g = problem.interaction_features_gradient(x)
    assert grad_v.shape == (x.shape[0], dim) and grad_g.shape == (problem.rank(), x.shape[0], dim)
    for c in range(dim):
        e = np.zeros(dim)
        e[c] = h
        fd_v = (problem.reduced_potential(x + e) - problem.reduced_potential(x - e)) / (2 * h)
        fd_g = (problem.interaction_low_rank(x + e).features - problem.interaction_low_rank(x - e).features) / (2 * h)
        np.testing.assert_allclose(grad_v[:, c], fd_v, atol=atol)
        np.testing.assert_allclose(grad_g[:, :, c], fd_g, atol=atol)


class GivenPotentialProblem(NoInteraction, ReducedProblem):
    """u = 0 (rank-0 kernel), ``E y² = 1`` and a given v (default 0) of the problem's one coordinate; the
    geometry (coordinate_names, domain, mobility, log J) is the subclass's."""

    def __init__(self, dimension: float, potential=None):
        self.dimension = dimension
        self.potential_fn = potential

    @property
    def target_second_moment(self) -> float:
        return 1.0

    def reduced_potential(self, points):
        x = np.asarray(points, dtype=float)
        return np.zeros_like(x) if self.potential_fn is None else self.potential_fn(x)
