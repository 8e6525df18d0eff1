"""Finite width for MMN18's isotropic mixture (reduced_pde.analysis.finite_width_mixture): exact
identities of the N-neuron flow and of the prediction; the validation against the N-neuron
population flow and SGD is marked slow."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import roots_jacobi

from reduced_pde.analysis import finite_width_mixture as fwm
from reduced_pde.analysis.finite_width import QUANTILES
from reduced_pde.analysis.finite_width_mixture import mixture_network_flow, mixture_output_variance, \
    predict_mixture_fluctuations
from reduced_pde.analysis.gaussian_norms import gaussian_norm_mean, mixture_norm_quantiles
from reduced_pde.models.isotropic_mixture import IsotropicGaussianMixture, IsotropicMixtureRadialProblem


def mixture(d: int, kappa: float = 0.4) -> IsotropicMixtureRadialProblem:
    return IsotropicMixtureRadialProblem(IsotropicGaussianMixture(0.5, d), "mmn18", kappa=kappa)


def test_output_variance_against_direct_quadrature():
    # c(0) = E_w D(|w|) − ∫∫U dν_0 dν_0: the double integral here by the problem's direct bivariate
    # quadrature over the cosine (no Hermite series) on the same radial rule; the Mehler truncation of the
    # low-rank form is below 1e-10 (reduction.truncation_tolerance) relative to E σ² ~ 5
    problem = mixture(12)
    n = 6
    r, w = fwm._Mixture(problem).radius_rule(n)
    direct = float(w @ fwm._Mixture(problem).diagonal(r) - w @ problem.interaction_kernel(r, r, 20) @ w)
    kernel = problem.interaction_low_rank(r)
    assert mixture_output_variance(problem, n) == pytest.approx(direct, abs=1e-8)
    assert kernel.rank > 0


def test_prediction_at_time_zero_is_the_output_variance():
    # At t = 0, ∂_ε M_f = g_f(w) − M_f(ν_0) exactly, so with the atoms on the bulk's radial rule the
    # (x₁, ρ) features must reproduce the problem's low-rank ∫∫U dν_0 dν_0 (Gauss–Jacobi exact in cos φ
    # up to degree 2·c_nodes − 1 >= K) and e(0) = c(0) = Var; round-off of the second difference
    # ~ 1e-16 · R / ε² ~ 1e-9
    problem = mixture(40)
    n = 12
    prediction = predict_mixture_fluctuations(problem, [0.0], atoms=n, r_nodes=n, c_nodes=12)
    exact = mixture_output_variance(problem, n)
    assert prediction.function_gap[0] == pytest.approx(exact, rel=1e-10)
    assert prediction.risk_excess[0] == pytest.approx(exact, rel=1e-7)
    assert exact == pytest.approx(mixture_output_variance(problem, 400), rel=2e-3)  # rule size, 12 vs 400 nodes


def test_network_gradient_is_the_risk_gradient():
    # dw_i/dt = −2ξ∇_1Ψ(w_i; ρ^N) = −ξ N ∂L_N/∂w_i; L_N by the problem's exact network risk at the same
    # Mehler degree K (off-diagonal) and the closed-form diagonal; central differences h = 1e-6:
    # error O(h²) + round-off 1e-16/h ~ 1e-9
    problem = mixture(12)
    mix = fwm._Mixture(problem)
    rng = np.random.default_rng(1)
    n_neurons = 5
    w = problem.initial_law().sample_weights(n_neurons, 12, rng)
    gradient = fwm._network_gradient(mix, w[None])[0]
    h = 1e-6
    numeric = np.zeros_like(w)
    for i in range(n_neurons):
        for q in range(12):
            plus, minus = w.copy(), w.copy()
            plus[i, q] += h
            minus[i, q] -= h
            numeric[i, q] = (problem.network_risk(plus, degree=mix.degree)[0]
                             - problem.network_risk(minus, degree=mix.degree)[0]) / (2 * h)
    assert np.max(np.abs(numeric * n_neurons / 2 - gradient)) < 1e-7 * np.max(np.abs(gradient))


def test_unperturbed_plane_flow_is_the_radial_reduction():
    # The ε = 0 batch of the (x₁, ρ) computation and the package's radial low-rank kernel (1-D) move the
    # same quadrature of ν_0 by the same RK4 steps: L(ν_t) equal to round-off
    problem = mixture(20)
    times = [0.0, 0.1]
    prediction = predict_mixture_fluctuations(problem, times, atoms=2, r_nodes=8, c_nodes=8, dt=0.05,
                                              min_substeps=2)
    runs = mixture_network_flow(problem, [2], [0], times, dt=0.05, min_substeps=2, nodes=8)
    assert np.allclose(prediction.mean_field_risk, runs.mean_field_risk, rtol=1e-10)
    assert runs.mean_field_risk[-1] < 0.5 * runs.mean_field_risk[0]


def test_coupling_response_at_small_time_is_the_velocity_perturbation():
    # g_t(θ, w) = t Δv(θ, w) + O(t²), Δv = −2[∇_1U(θ, w) − ∇ψ_U(|θ|; ν_0)] (ξ = 1), computed here without
    # the Mehler series or the plane kernel: U by the activation's exact bivariate expectation, its (r, φ)
    # derivatives by central differences (h = 1e-6: error ~1e-10 relative), ψ_U(r) = Σ_j w_j u(r, r_j) by
    # the problem's direct cosine quadrature (16 Gauss–Jacobi nodes: exact to degree 31 > K = 22, and the
    # series beyond K is < 1e-10); radial part = the r-derivative (θ's own direction), tangential
    # part = r^{−1}∂_φ.  The O(t) remainder is estimated from t and 2t (rms(t) − tR ≈ rms(2t)/2 − rms(t)).
    problem = mixture(40)
    d, atoms, r_nodes, c_nodes, t = 40, 2, 2, 12, 2e-4
    prediction = predict_mixture_fluctuations(problem, [0.0, t, 2 * t], atoms=atoms, r_nodes=r_nodes,
                                              c_nodes=c_nodes, dt=t / 2, min_substeps=2)
    assert prediction.coupling_rms[0] == 0 and prediction.coupling_mean[0] == 0
    assert np.all(prediction.coupling_quantiles[0] == 0)
    mix = fwm._Mixture(problem)
    r0, wr = mix.radius_rule(r_nodes)
    ra, wa = mix.radius_rule(atoms)
    c0, wc = roots_jacobi(c_nodes, (d - 3) / 2, (d - 3) / 2)
    wc = wc / wc.sum()
    act, h = mix.activation, 1e-6

    def pair(r, phi, r_atom):
        return sum(p * act.bivariate_expectation(s * r, s * r_atom, np.cos(phi)) for p, s in mix.classes)

    def psi_slope(r):
        up, down = problem.interaction_kernel([r + h], r0, 16), problem.interaction_kernel([r - h], r0, 16)
        return float((up - down)[0] @ wr) / (2 * h)

    along, across = np.zeros(r_nodes), np.zeros(r_nodes)
    for j, r in enumerate(r0):
        slope = psi_slope(r)
        for a, r_atom in enumerate(ra):
            for n, c in enumerate(c0):
                phi = np.arccos(c)
                radial = (pair(r + h, phi, r_atom) - pair(r - h, phi, r_atom)) / (2 * h) - slope
                tangential = (pair(r, phi + h, r_atom) - pair(r, phi - h, r_atom)) / (2 * h * r)
                along[j] += wa[a] * wc[n] * (2 * radial) ** 2
                across[j] += wa[a] * wc[n] * (2 * tangential) ** 2
    # the limits from C_t = α θ̂θ̂ᵀ + λ(I − θ̂θ̂ᵀ) per radius, without fwm.coupling_limits: rms² = E tr C_t
    rms = np.sqrt(wr @ (along + across))
    eigenvalues, multiplicities = np.stack([along, across / (d - 1)], axis=-1), np.array([1.0, d - 1.0])
    mean = wr @ gaussian_norm_mean(eigenvalues, multiplicities)
    quantiles = mixture_norm_quantiles(np.asarray(QUANTILES), wr, eigenvalues, multiplicities)
    assert mean <= rms  # Jensen
    for got, slope in ((prediction.coupling_rms, rms), (prediction.coupling_mean, mean),
                       (prediction.coupling_quantiles, quantiles)):
        remainder = np.abs(got[2] / 2 - got[1])
        assert np.all(remainder < 1e-2 * np.abs(got[1]))  # t is small: the estimate below is a bound
        assert np.all(np.abs(got[1] - t * slope) <= 1.5 * remainder + 1e-8 * np.abs(t * slope)), (got[1], t * slope)


def test_bad_input_is_refused():
    problem = mixture(20)
    with pytest.raises(ValueError, match="chaos.atoms"):
        predict_mixture_fluctuations(problem, [0.0, 0.1], atoms=0)
    with pytest.raises(ValueError, match="chaos.widths"):
        mixture_network_flow(problem, [1], [0], [0.0, 0.1])
    with pytest.raises(ValueError, match="isotropic_gaussian_mixture"):
        predict_mixture_fluctuations(object(), [0.0])


# ------------------------------------------------------------------------------------------------
# Validation (slow): c(t) against the N-neuron population gradient flow, MMN18 mixture at d = 40
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_prediction_matches_network_flow():
    """N (E L_N − L(ν_t)) (with the twins' control variate) against c(t), and N E[E_t²] against e(t),
    for MMN18's σ, Δ = 0.5, κ = 0.4, d = 40, t = 0 … 1 (the risk falls 5.16 → 0.053).  Allowed error, the sum of: 3 standard
    errors of the seed mean at N = 100 (8 networks); the O(1/N) correction, estimated as
    |X_50 − X_100| (X_N = X + b/N: X_100 − X = X_50 − X_100); the resolution of the prediction,
    |P(16 atoms × 32 radii) − P(8 × 24)| (the refinement change, taken as the finer rule's error).
    The same for the coupling gap's limits (rms², mean, quantiles; docs/finite_width.md §5.1).
    28 s idle, 3 minutes on 2 loaded cores."""
    problem = mixture(40)
    times = np.array([0.0, 0.01, 0.03, 0.1, 0.3, 1.0])
    fine = predict_mixture_fluctuations(problem, times, atoms=16, r_nodes=32, c_nodes=12, dt=0.05, min_substeps=3)
    coarse = predict_mixture_fluctuations(problem, times, atoms=8, r_nodes=24, c_nodes=12, dt=0.05, min_substeps=3)
    runs = {width: mixture_network_flow(problem, [width], list(range(seeds)), times, dt=0.05, min_substeps=3)
            for width, seeds in ((50, 16), (100, 8))}
    for run in runs.values():
        assert np.allclose(run.mean_field_risk, fine.mean_field_risk, rtol=2e-3)  # radial rules 256 vs 32 nodes
    for name, theory, coarse_theory in (("scaled_excess", fine.risk_excess, coarse.risk_excess),
                                        ("function_gap_squared", fine.function_gap, coarse.function_gap)):
        means = {}
        for width, run in runs.items():
            values = run.scaled_excess if name == "scaled_excess" else width * run.function_gap_squared
            mean, se = run.seed_mean(values)
            means[width] = (mean[0], se[0])
        bias = np.abs(means[50][0] - means[100][0])
        error = np.abs(means[100][0] - theory)
        resolution = np.abs(theory - coarse_theory)
        assert np.all(error <= 3 * means[100][1] + bias + resolution + 1e-9), (name, means, theory, resolution)
    resolution = np.abs(fine.risk_excess - coarse.risk_excess)
    # t = 0: c(0) exact (400 radial nodes); the 16-atom rule is off by its refinement change at most
    assert abs(fine.risk_excess[0] - mixture_output_variance(problem, 400)) <= resolution[0]
    # The coupling gap (docs/finite_width.md §5.1), same allowance: N E|w_i − w̄_i|² (the seed mean of each
    # network's mean square) against rms², √N E|w_i − w̄_i| against the mean, and √N × the quantiles of the
    # gaps pooled over all seeds' neurons (one neuron's law) against the predicted quantiles.  A network's
    # mean over its neurons does not self-average (all its neurons see one initial fluctuation field,
    # Gaussian as N → ∞), so the seed error stays O(1) in N (≈ 4% of the value at d = 40 with 8 seeds);
    # the pooled quantile's seed error is taken as the s.e. of the seed mean of the per-network quantiles
    # (the same between-network spread moves both).
    for name, theory, coarse_theory in (
            ("coupling_rms", fine.coupling_rms ** 2, coarse.coupling_rms ** 2),
            ("coupling_mean", fine.coupling_mean, coarse.coupling_mean),
            ("coupling_quantiles", fine.coupling_quantiles, coarse.coupling_quantiles)):
        means = {}
        for width, run in runs.items():
            values = getattr(run, name)[0]
            values = width * values ** 2 if name == "coupling_rms" else np.sqrt(width) * values
            mean, se = run.seed_mean(values[None])
            if name == "coupling_quantiles":
                mean = np.sqrt(width) * run.coupling_pooled_quantiles
            means[width] = (mean[0], se[0])
        bias = np.abs(means[50][0] - means[100][0])
        error = np.abs(means[100][0] - theory)
        resolution = np.abs(theory - coarse_theory)
        assert np.all(error[1:] <= 3 * means[100][1][1:] + bias[1:] + resolution[1:] + 1e-9), \
            (name, means, theory, resolution)
        # the twins start on their neurons: |w_i − |w_i| w_i/|w_i|| is round-off (~1e-16 |w|)
        assert np.all(theory[0] == 0) and np.all(np.abs(means[100][0][0]) < 1e-12)


@pytest.mark.slow
def test_finite_width_notebook_runs(capsys):
    """Every code cell of notebooks/finite_width.ipynb, in order (34 s idle)."""
    import json
    from pathlib import Path

    notebook = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / "finite_width.ipynb").read_text())
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "notebook-cell", "exec"), namespace)
    out = capsys.readouterr().out
    assert "N(L_N − L), N = 50" in out and "m E_t², m = 16" in out


def test_function_gap_at_time_zero_has_mean_variance_over_n():
    # E[E_0²] = Var/N exactly (iid neurons): N E_0² averaged over 64 networks of N = 8 against
    # c(0) = e(0); Monte-Carlo tolerance 4 standard errors of that mean
    problem = mixture(20)
    runs = mixture_network_flow(problem, [8], list(range(64)), [0.0], nodes=64)
    values = 8 * runs.function_gap_squared[0, :, 0]
    assert np.all(values >= -1e-9)
    assert values.mean() == pytest.approx(mixture_output_variance(problem, 64),
                                          abs=4 * values.std(ddof=1) / np.sqrt(values.size))
