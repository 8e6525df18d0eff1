"""Wall time of a 1-D MMN18 finite-volume solve: d = 320, kappa = 0.4, 1600 cells on [0, 4], t <= 10, muscl.
Min of 3 runs after a compilation run."""
import sys, time
import numpy as np
from reduced_pde import IsotropicGaussianMixture, IsotropicMixtureRadialProblem
from solvers.finite_volume import solve_finite_volume
from solvers.grid import UniformGrid1D

problem = IsotropicMixtureRadialProblem(IsotropicGaussianMixture(0.5, 320), "mmn18", kappa=0.4)
grid = UniformGrid1D(0.0, 4.0, 1600)
times = np.linspace(0.0, 10.0, 21)
solve_finite_volume(problem, grid, [0.01], scheme="muscl")  # compile
walls = []
for _ in range(3):
    began = time.perf_counter()
    tr = solve_finite_volume(problem, grid, times, scheme="muscl")
    walls.append(time.perf_counter() - began)
print(f"walls {['%.3f' % w for w in walls]} min {min(walls):.3f} s; steps {tr.diagnostics['steps']:.0f}; "
      f"risk[-1] {tr.risk[-1]:.12g}; mean_r[-1] {tr.mean_of('r')[-1]:.12g}")
