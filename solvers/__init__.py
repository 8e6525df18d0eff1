from solvers.sgd import SGDSimulation, run_sgd, run_sgd_seeds, seed_statistics  # noqa: F401
