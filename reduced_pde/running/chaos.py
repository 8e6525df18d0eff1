"""Finite-width runs from a configuration: coupled m-neuron runs, the 1/m prediction, HDF5, figure.

``run_chaos(config)`` reads ``[chaos]`` (widths, seeds, RK4 step, rule sizes) and ``[output]`` (the
times) of a validated configuration and runs what its problem's finite-width hook
(:meth:`~reduced_pde.problem.ReducedProblem.finite_width`) provides: on the sphere
(``single_index_sphere`` with a fixed second layer and a polynomial activation, ``circle_sphere``;
:mod:`reduced_pde.analysis.finite_width`) or for MMN18's isotropic mixture
(``isotropic_gaussian_mixture``; :mod:`reduced_pde.analysis.finite_width_mixture`).  Nothing here
depends on which.  ``write_chaos`` stores one file::

    /time (T,), /width (W,), /seed (S,)                     coordinates
    /function_gap_squared, /network_risk, /twin_fluctuation,
    /coupling_mean, /coupling_rms        (W, S, T)
    /coupling_quantiles                  (W, S, T, Q), attribute ``quantiles``
    /mean_field_risk                     (T,)  L(ν_t) of the reduced flow
    /prediction/function_gap, /prediction/risk_excess, /prediction/mean_field_risk  (T,)  e, c, L
    /prediction/function_gap_error, /prediction/risk_excess_error  (T,)  (atom_rule = "adapted" only)
    /prediction/coupling_rms, /prediction/coupling_mean (T,), /prediction/coupling_quantiles (T, Q)
                                         the coupling gap's limits × √m (where the model predicts them)
                                         (all NaN after chaos.predict_until)
    attrs: kind = "chaos", config.<table>.<key> (the full configuration), derived.<key>
"""

from __future__ import annotations

import time as _time
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from reduced_pde.analysis.finite_width import QUANTILES, CoupledRuns, FiniteWidth, FluctuationPrediction
from reduced_pde.running.config import build_schedule, finite_width_hook, flatten, noise_parameters, output_times, \
    parse_config
from reduced_pde.running.storage import _attr_value, atomic_h5, write_config_attributes

__all__ = ["chaos_hook", "run_chaos", "write_chaos", "read_chaos", "plot_chaos"]


def chaos_hook(config: Mapping[str, Any]) -> FiniteWidth:
    """The finite-width runs of a validated configuration (:func:`~reduced_pde.running.config.finite_width_hook`:
    a model without them, a ``[chaos]`` key they do not read, a value they cannot take are refused);
    the runs are the noiseless gradient flow, so noise and weight decay are refused too."""
    beta, lam = noise_parameters(config)
    if beta != float("inf") or lam != 0.0:
        raise ValueError(f"noise.beta = {config['noise']['beta']!r}, noise.weight_decay = "
                         f"{config['noise']['weight_decay']!r}: the finite-width runs (reduced-pde chaos) are the "
                         "noiseless gradient flow; use beta = \"inf\" and weight_decay = 0")
    return finite_width_hook(config)


def run_chaos(config: Mapping[str, Any], *, widths: Sequence[int] | None = None,
              seeds: Sequence[int] | None = None, predict: bool | None = None
              ) -> dict[str, Any]:
    """Coupled runs (and, if ``chaos.predict``, the prediction) for a validated configuration;
    ``widths``/``seeds``/``predict`` override ``[chaos]`` (and are written back into the stored
    configuration, so the file describes what ran)."""
    config = {table: dict(values) if isinstance(values, Mapping) else values for table, values in config.items()}
    chaos = config["chaos"]
    if widths is not None:
        chaos["widths"] = [int(m) for m in widths]
    if seeds is not None:
        chaos["seeds"] = [int(s) for s in seeds]
    if predict is not None:
        chaos["predict"] = bool(predict)
    config = parse_config(config)  # re-validate the overrides (one error format)
    chaos = config["chaos"]
    hook = chaos_hook(config)
    schedule = build_schedule(config)
    times = output_times(config)
    start = _time.perf_counter()
    runs = hook.coupled_runs(times, chaos, schedule)
    run_time = _time.perf_counter() - start
    prediction = None
    if chaos["predict"]:
        start = _time.perf_counter()
        until = times[-1] if chaos["predict_until"] == "t_final" else chaos["predict_until"]
        kept = times[times <= until * (1 + 1e-12)]
        prediction = hook.predict(kept, chaos, schedule)
        missing = times.size - kept.size  # outputs after chaos.predict_until: not predicted (NaN)
        prediction = FluctuationPrediction(times, config=prediction.config, **{
            name: np.concatenate([values, np.full((missing,) + values.shape[1:], np.nan)])
            for name, values in prediction.arrays().items()})
        prediction.config["wall_time"] = _time.perf_counter() - start
        prediction.config["predict_until"] = float(until)
    return {"config": config, "runs": runs, "prediction": prediction, "wall_time": run_time}


def write_chaos(path: str | Path, result: Mapping[str, Any]) -> Path:
    """Write :func:`run_chaos`'s result atomically (layout in the module docstring)."""
    from reduced_pde import __version__
    runs: CoupledRuns = result["runs"]
    prediction: FluctuationPrediction | None = result["prediction"]

    def write(file: h5py.File) -> None:
        file.attrs["kind"] = "chaos"
        file.attrs["package_version"] = __version__
        file.attrs["created"] = _time.strftime("%Y-%m-%dT%H:%M:%S")
        file.attrs["dims"] = "width, seed, time"
        write_config_attributes(file, flatten(result["config"]))
        for key, value in runs.config.items():
            file.attrs[f"derived.{key}"] = _attr_value(value)
        file.attrs["diagnostics.wall_time"] = float(result.get("wall_time", np.nan))
        file["time"] = runs.time
        file["width"] = runs.widths
        file["seed"] = runs.seeds
        for name in ("function_gap_squared", "network_risk", "twin_fluctuation", "coupling_mean", "coupling_rms"):
            file[name] = getattr(runs, name)
        file["coupling_quantiles"] = runs.coupling_quantiles
        file["coupling_quantiles"].attrs["quantiles"] = np.asarray(runs.quantiles)
        file["mean_field_risk"] = runs.mean_field_risk
        if prediction is not None:
            group = file.create_group("prediction")
            for name, values in prediction.arrays().items():
                group[name] = values
            for key, value in prediction.config.items():
                group.attrs[key] = _attr_value(value)

    return atomic_h5(path, write)


def read_chaos(path: str | Path) -> dict[str, Any]:
    """The arrays of a chaos file as a :class:`CoupledRuns` and, if present, a prediction."""
    with h5py.File(path, "r") as file:
        if file.attrs.get("kind") != "chaos":
            raise ValueError(f"{path} is not a chaos result file (attribute kind = {file.attrs.get('kind')!r})")
        runs = CoupledRuns(file["time"][()], file["width"][()], file["seed"][()], file["function_gap_squared"][()],
                           file["coupling_mean"][()], file["coupling_rms"][()], file["coupling_quantiles"][()],
                           file["network_risk"][()], file["mean_field_risk"][()], file["twin_fluctuation"][()],
                           tuple(file["coupling_quantiles"].attrs.get("quantiles", QUANTILES)))
        prediction = None
        if "prediction" in file:
            g = file["prediction"]
            prediction = FluctuationPrediction(file["time"][()], config=dict(g.attrs), **{
                name: g[name][()] for name in FluctuationPrediction.ARRAYS if name in g})
    return {"runs": runs, "prediction": prediction}


def plot_chaos(path: str | Path, output: str | Path) -> Path:
    """Three panels against t (log axis, t > 0): m E_t² (→ e(t)), √m × mean coupling gap, and
    m (L_m − L(ν_t)) with the control variate (→ c(t)); seed means ± 2 standard errors per m, the
    prediction as a black line."""
    from reduced_pde.running.plotting import plt, save_figure

    data = read_chaos(path)
    runs: CoupledRuns = data["runs"]
    prediction = data["prediction"]
    t = runs.time
    keep = t > 0
    m = runs.widths[:, None, None].astype(float)
    panels = [("m · E_t²", m * runs.function_gap_squared, None if prediction is None else prediction.function_gap),
              ("√m · mean |w_i − w̄_i|", np.sqrt(m) * runs.coupling_mean,
               None if prediction is None else prediction.coupling_mean),
              ("m · (L_m − L(ν_t))", m * runs.risk_excess_controlled,
               None if prediction is None else prediction.risk_excess)]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (label, values, theory) in zip(axes, panels):
        mean, se = runs.seed_mean(values)
        for k, width in enumerate(runs.widths):
            ax.errorbar(t[keep], mean[k, keep], yerr=2 * np.nan_to_num(se[k, keep]), capsize=2, marker="o", ms=3,
                        label=f"m = {width}")
        if theory is not None:
            ax.plot(t[keep], theory[keep], "k-", lw=1.5, label="prediction (m → ∞)")
        ax.set_xscale("log")
        ax.set_xlabel("t")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"finite width: {len(runs.seeds)} seeds per m, mean ± 2 s.e.")
    return save_figure(fig, output)
