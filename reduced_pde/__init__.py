"""reduced-pde: mean-field PDEs of two-layer networks, reduced by the symmetries of the data."""

from reduced_pde.activations import Activation, PiecewiseLinearActivation, SmoothActivation, make_activation
from reduced_pde.models.isotropic_mixture import IsotropicGaussianMixture
from reduced_pde.initial_laws import GaussianBump, InitialLaw, PointMass, ScaledChi, make_initial_law
from reduced_pde.problem import LowRankKernel, ReducedProblem
from reduced_pde.models.isotropic_mixture import IsotropicMixtureRadialProblem
from reduced_pde.schedules import LearningRateSchedule

__version__ = "0.1.0"

__all__ = [
    "Activation", "PiecewiseLinearActivation", "SmoothActivation", "make_activation",
    "IsotropicGaussianMixture", "InitialLaw", "ScaledChi", "PointMass", "GaussianBump",
    "make_initial_law", "LowRankKernel", "ReducedProblem", "IsotropicMixtureRadialProblem",
    "LearningRateSchedule",
]

from reduced_pde.activations import PolynomialActivation  # noqa: E402
from reduced_pde.models.single_index import SingleIndexInitialLaw, SingleIndexProblem  # noqa: E402
from reduced_pde.targets import (ActivationTarget, CallableTarget, HermiteTarget, SingleIndexTarget,  # noqa: E402
                      make_target)

__all__ += ["PolynomialActivation", "SingleIndexInitialLaw", "SingleIndexProblem", "ActivationTarget",
            "CallableTarget", "HermiteTarget", "SingleIndexTarget", "make_target"]

from reduced_pde.analysis.plateaus import (compare_plateaus, detect_plateaus, hermite_plateau_heights,  # noqa: E402
                       unlearnable_degrees)
from reduced_pde.analysis.timescales import (escape_time, he0_fit_time, he1_learning_time, learning_time,  # noqa: E402
                         predicted_escape_time)

__all__ += ["compare_plateaus", "detect_plateaus", "hermite_plateau_heights", "unlearnable_degrees",
            "escape_time", "he0_fit_time", "he1_learning_time", "learning_time", "predicted_escape_time"]

from reduced_pde.resources import config_path, configs_dir, find_results  # noqa: E402

__all__ += ["config_path", "configs_dir", "find_results"]
