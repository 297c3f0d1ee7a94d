"""TunerConfig: the OfflineTuner's options, validated in full before anything is fitted.

Every option is checked against the experiment in :meth:`TunerConfig.from_options`, so a
misspelled estimator, an unknown scaling or a guardrail on a missing outcome fails in
milliseconds instead of after the CATE model's fit. The config is frozen; its JSON form
(:meth:`TunerConfig.to_dict`) is what saved tuners store as ``"config"``, and
``config["objectives"]`` reads that form by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from pex_tuner.checks import Interval, Options, TypeOf, param_error, validate_params
from pex_tuner.data import ExperimentData
from pex_tuner.effects import LEARNERS
from pex_tuner.errors import ConfigurationError
from pex_tuner.ope import ESTIMATORS
from pex_tuner.tuning.generation import ACQUISITIONS, MULTI_OBJECTIVE
from pex_tuner.tuning.space import PARAMETERIZATIONS, SCALINGS

__all__ = [
    "FRONTIER_ESTIMATES",
    "LEARNER_CHOICES",
    "SPLITS",
    "TunerConfig",
    "check_base_learner",
    "check_count",
    "check_policy_names",
]

SPLITS = ("validation", "train+validation", "test")
#: which estimate selects the frontier and the online candidates (see ``OfflineTuner``)
FRONTIER_ESTIMATES = ("observed", "model")
#: the CATE learner choices: ``"auto"`` selects among ``LEARNERS`` by the data
LEARNER_CHOICES = ("auto", *LEARNERS)

_CONSTRAINTS = {
    "acquisition": [Options(ACQUISITIONS)],
    "split": [Options(SPLITS)],
    "scaling": [Options(SCALINGS)],
    "batch_size": [Interval(int, 1, None)],
    "estimator": [Options(ESTIMATORS)],
    "learner": [Options(LEARNER_CHOICES)],
    "design_size": [Interval(int, 0, None)],
    "model_points": [Interval(int, 1, None)],
    "frontier_estimate": [Options(FRONTIER_ESTIMATES)],
    "candidate_estimate": [Options(FRONTIER_ESTIMATES)],
    "n_folds": [Interval(int, 2, None)],
    "parameterization": [Options(PARAMETERIZATIONS)],
    "use_biases": [TypeOf(bool, "a bool")],
    "init_trials": [Interval(int, 1, None), None],
    "weight_scale": [Interval(float, 0, None, closed="neither")],
    "bias_scale": [Interval(float, 0, None, closed="neither"), None],
    "random_state": [Interval(int, 0, None)],
    "name": [TypeOf(str, "a str")],
}


@dataclass(frozen=True, kw_only=True)
class TunerConfig:
    """The options of an :class:`~pex_tuner.tuning.offline.OfflineTuner` (documented there).

    ``objectives`` is resolved (every outcome not named in guardrails by default) and
    ``init_trials`` is None until the tuner knows the number of parameters. Fields are in the
    order saved tuners have always stored them.
    """

    name: str = "pex_tuner"
    objectives: tuple[str, ...]
    guardrails: Mapping[str, float] = field(default_factory=dict)
    learner: str = "auto"
    n_folds: int = 5
    estimator: str = "dr"
    split: str = "train+validation"
    use_biases: bool = True
    parameterization: str = "linear"
    acquisition: str = "qLogNParEGO"
    batch_size: int = 4
    init_trials: int | None = None
    scaling: str = "absolute"
    weight_scale: float = 4.0
    bias_scale: float | None = None
    random_state: int = 0
    design_size: int = 1024
    model_points: int = 64
    frontier_estimate: str = "observed"
    candidate_estimate: str = "model"

    @classmethod
    def from_options(
        cls,
        data: ExperimentData,
        *,
        objectives: Sequence[str] | None = None,
        guardrails: Mapping[str, float] | None = None,
        **options: Any,
    ) -> TunerConfig:
        """Check every option against ``data`` and return the config.

        Raises:
            ConfigurationError: naming the first bad option and what it must be.
        """
        guardrails = dict(guardrails or {})
        _check_guardrails(guardrails, data.outcomes)
        resolved = _resolve_objectives(objectives, guardrails, data.outcomes)
        validate_params(options, _CONSTRAINTS)
        acquisition = options.get("acquisition", "qLogNParEGO")
        if len(resolved) == 1 and acquisition in MULTI_OBJECTIVE:
            raise ConfigurationError(
                f"acquisition '{acquisition}' needs at least two objectives; with one "
                "objective use acquisition='qLogNEI'"
            )
        return cls(objectives=resolved, guardrails=guardrails, **_as_floats(options))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TunerConfig:
        """The config of a saved tuner (its ``"config"``); older saves lack some options."""
        d = dict(d)
        # tuners saved before these options existed used absolute scaling and bias_scale 0.25
        d.setdefault("scaling", "absolute")
        d.setdefault("bias_scale", 0.25)
        # ... and before the dense design: Sobol initialization inside Ax, observed frontier
        d.setdefault("design_size", 0)
        d.setdefault("frontier_estimate", "observed")
        d.setdefault("candidate_estimate", "observed")
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["objectives"] = tuple(known["objectives"])
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (lists and dicts), as saved tuners store it."""
        d = asdict(self)
        d["objectives"] = list(self.objectives)
        d["guardrails"] = dict(self.guardrails)
        return d

    def with_init_trials(self, n_parameters: int) -> TunerConfig:
        """The config with ``init_trials`` resolved (default ``max(5, 2 * n_parameters)``)."""
        if self.init_trials is not None:
            return self
        return replace(self, init_trials=max(5, 2 * int(n_parameters)))

    def __getitem__(self, key: str) -> Any:
        """An option by name, as in :meth:`to_dict` (``config["objectives"]`` is a list)."""
        return self.to_dict()[key]


def _as_floats(options: Mapping[str, Any]) -> dict[str, Any]:
    """Validated options with ints given for float options stored as floats."""
    out = dict(options)
    for key in ("weight_scale", "bias_scale"):
        if out.get(key) is not None:
            out[key] = float(out[key])
    for key in (
        "n_folds",
        "batch_size",
        "random_state",
        "init_trials",
        "design_size",
        "model_points",
    ):
        if out.get(key) is not None:
            out[key] = int(out[key])
    return out


def _check_guardrails(guardrails: Mapping[str, Any], outcomes: Sequence[str]) -> None:
    for g, tol in guardrails.items():
        if g not in outcomes:
            raise ConfigurationError(
                f"guardrail '{g}' is not an outcome; expected one of {list(outcomes)}"
            )
        if not (isinstance(tol, int | float) and 0 <= tol < 1):
            raise ConfigurationError(
                f"guardrail '{g}' tolerance must be a fraction in [0, 1) (0.005 = 0.5%); "
                f"got {tol!r}"
            )


def _resolve_objectives(
    objectives: Sequence[str] | None, guardrails: Mapping[str, Any], outcomes: Sequence[str]
) -> tuple[str, ...]:
    if objectives is None:
        objectives = [o for o in outcomes if o not in guardrails]
    objectives = tuple(objectives)
    for o in objectives:
        if o not in outcomes:
            raise ConfigurationError(
                f"objective '{o}' is not an outcome; expected one of {list(outcomes)}"
            )
        if o in guardrails:
            raise ConfigurationError(f"'{o}' cannot be both an objective and a guardrail")
    if not objectives:
        raise ConfigurationError("at least one outcome must be an objective")
    return objectives


def check_base_learner(base_learner: Any) -> None:
    """A CATE base learner must be None or a scikit-learn regressor (fit and predict)."""
    if base_learner is not None and not (
        hasattr(base_learner, "fit") and hasattr(base_learner, "predict")
    ):
        raise param_error(
            "base_learner",
            "a scikit-learn regressor with fit and predict",
            type(base_learner).__name__,
        )


def check_count(name: str, value: Any) -> int:
    """``value`` as an int >= 1, else ConfigurationError (``The 'budget' parameter must be an
    int >= 1. Got 0 instead.``): the check of ``run(budget)``, ``select_online_candidates(k)``
    and the workflows' counts, made before any work."""
    validate_params({name: value}, {name: [Interval(int, 1, None)]})
    return int(value)


def check_policy_names(names: Iterable[str], lookup: Callable[[str], Any]) -> list[str]:
    """``names`` as a list after checking that ``lookup`` knows every one of them (all unknown
    names listed at once), so ``write_artifacts`` fails before writing anything."""
    if isinstance(names, str):
        raise param_error("names", "a sequence of policy names, not one str", names)
    names = list(names)
    unknown = []
    for name in names:
        try:
            lookup(name)
        except ConfigurationError:
            unknown.append(name)
    if unknown:
        raise ConfigurationError(
            f"no evaluated policy named {unknown}; nothing was written (evaluated policies: "
            "tuner.evaluations()['policy'])"
        )
    return names
