"""reduced-pde: mean-field PDEs of two-layer networks, reduced by the symmetries of the data."""

from .activations import Activation, PiecewiseLinearActivation, SmoothActivation, make_activation
from .data_models import IsotropicGaussianMixture
from .initial_laws import GaussianBump, InitialLaw, PointMass, ScaledChi, make_initial_law
from .problem import LowRankKernel, ReducedProblem
from .radial_reduction import IsotropicMixtureRadialProblem
from .schedules import LearningRateSchedule

__version__ = "0.1.0"

__all__ = [
    "Activation", "PiecewiseLinearActivation", "SmoothActivation", "make_activation",
    "IsotropicGaussianMixture", "InitialLaw", "ScaledChi", "PointMass", "GaussianBump",
    "make_initial_law", "LowRankKernel", "ReducedProblem", "IsotropicMixtureRadialProblem",
    "LearningRateSchedule",
]
