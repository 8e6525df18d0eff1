"""How small must ε/B be for SGD to track the MMN18 PDE?  (N = 800, d = 320, Δ = 0.5, κ = 0.4, ξ = 1.)

Runs SGD for several (ε, B) up to ``--t-max`` and the reduced PDE (Lagrangian particles at the same
d) and prints mean_r and the N = ∞ risk of the law of |w| (``risk``; the network's is ``network_risk``) side by side, plus the
Monte-Carlo radial noise drift ``2εξ²E[a²|x⊥|²]/(B r)`` (solvers.sgd.radial_noise_drift) at the end.

    python benchmarks/sgd_noise_bias.py --configs 4e-3,100 1e-3,100 2.5e-4,100 1e-4,10 --t-max 10
"""

from __future__ import annotations

import argparse
import time


from reduced_pde import IsotropicGaussianMixture, IsotropicMixtureRadialProblem
from solvers.lagrangian import solve_lagrangian
from reduced_pde.models.isotropic_mixture import IsotropicMixtureNetwork
from solvers.sgd import SGDSimulation, radial_noise_drift


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--configs", nargs="+", default=["4e-3,100", "1e-3,100", "2.5e-4,100"])
    parser.add_argument("--t-max", type=float, default=10.0)
    parser.add_argument("--neurons", type=int, default=800)
    parser.add_argument("--dimension", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    problem = IsotropicMixtureRadialProblem(IsotropicGaussianMixture(0.5, args.dimension), "mmn18", kappa=0.4)
    times = [t for t in (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0) if t <= args.t_max]
    start = time.perf_counter()
    pde = solve_lagrangian(problem, times, n_particles=400)
    print(f"PDE (lagrangian, 400 particles) {time.perf_counter() - start:.1f} s", flush=True)
    print("t      " + "  ".join(f"{t:8g}" for t in times))
    print("PDE mean_r " + " ".join(f"{v:8.5f}" for v in pde.mean_of("r")))
    print("PDE risk   " + " ".join(f"{v:8.5f}" for v in pde.risk), flush=True)
    for spec in args.configs:
        eps, batch = float(spec.split(",")[0]), int(spec.split(",")[1])
        sim = SGDSimulation(IsotropicMixtureNetwork(problem), problem, n_neurons=args.neurons, step_size=eps,
                            batch_size=batch, seed=args.seed)
        mean_r, reduced, risk = [], [], []
        stepping = 0.0
        for t in times:
            t0 = time.perf_counter()
            sim.advance(t)
            stepping += time.perf_counter() - t0
            obs = sim.observables()
            mean_r.append(obs["mean_r"]), reduced.append(obs["risk"]), risk.append(obs["network_risk"])
        drift = radial_noise_drift(sim, 20000)
        print(f"eps={eps:g} B={batch} (eps/B={eps / batch:.2g}) steps={sim.steps} stepping {stepping:.0f} s "
              f"({sim.steps / stepping:.0f} steps/s, backend {sim.backend}); at t_max: noise drift of r "
              f"{drift['noise_drift'].mean():.3g}/unit time, |mean velocity| {abs(drift['velocity'].mean()):.3g}")
        print("  mean_r   " + " ".join(f"{v:8.5f}" for v in mean_r))
        print("  red.risk " + " ".join(f"{v:8.5f}" for v in reduced))
        print("  net.risk " + " ".join(f"{v:8.5f}" for v in risk), flush=True)


if __name__ == "__main__":
    main()
