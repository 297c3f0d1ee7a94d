"""Request and response bodies of the service's HTTP API (pydantic).

Request bodies forbid unknown fields and bound every number, so a malformed request is a 422
before any handler runs. Response bodies document what each endpoint answers; fields whose
content comes from the tuner (parameters, metrics, tables) are plain JSON objects.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pex_tuner.launch.document import HOLDOUT_RANGE

__all__ = [
    "CalibrationResponse",
    "ConstraintBody",
    "CreateRunBody",
    "CreateRunResponse",
    "LaunchBody",
    "LaunchResponse",
    "MetricValue",
    "NextBatchBody",
    "NextBatchResponse",
    "ParetoResponse",
    "ReportResponse",
    "ResultsBody",
    "RunResponse",
    "StatusBody",
    "StatusResponse",
]

Finite = Annotated[float, Field(allow_inf_nan=False)]
JSON = dict[str, Any]


# ---------------------------------------------------------------------------- requests
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConstraintBody(_Body):
    """An absolute bound on an online metric."""

    op: Literal[">=", "<="]
    bound: Finite


class CreateRunBody(_Body):
    """``POST /v1/runs``: start an online run from a saved offline tuner."""

    tuner_dir: str = Field(
        min_length=1,
        max_length=4096,
        pattern=r"^[^\x00]+$",
        description="a saved offline tuner (or `tune` output) under the server's runs root; "
        "relative paths are taken inside it",
    )
    n_candidates: int = Field(4, ge=1, le=64, description="offline candidates in the 1st batch")
    objectives: dict[str, Literal["max", "min"]] | None = Field(
        None, description="online metric -> direction; default: the offline objectives"
    )
    constraints: dict[str, ConstraintBody] | None = None
    batch_size: int | None = Field(None, ge=1, le=64)
    margin: float = Field(0.25, ge=0, le=1)
    acquisition: Literal["qLogNParEGO", "qLogNEHVI"] = "qLogNParEGO"


class NextBatchBody(_Body):
    """``POST /v1/runs/{run_id}/next-batch``: up to ``size`` trials for ``poller``."""

    size: int = Field(ge=1, le=64)
    poller: str | None = Field(None, max_length=200)


class MetricValue(_Body):
    """One online metric of a trial: mean, its standard error, and the units behind it."""

    mean: Finite
    sem: Finite = Field(ge=0)
    n: int | None = Field(None, ge=1)


class ResultsBody(_Body):
    """``POST .../trials/{trial_id}/results``: metric name -> value (some or all of them)."""

    metrics: dict[str, MetricValue] = Field(min_length=1)


class StatusBody(_Body):
    """``POST .../trials/{trial_id}/status``: the online system gave up on a trial."""

    status: Literal["failed", "abandoned"]
    reason: str | None = Field(None, max_length=2000)


class LaunchBody(_Body):
    """``POST /v1/runs/{run_id}/launch``: launch a tested trial's policy with a holdout."""

    trial_id: int = Field(ge=0)
    holdout: float = Field(HOLDOUT_RANGE[1], ge=HOLDOUT_RANGE[0], le=HOLDOUT_RANGE[1])
    salt: str | None = Field(None, min_length=1, max_length=200)


# ---------------------------------------------------------------------------- responses
class CreateRunResponse(BaseModel):
    """The new run's id, its number of trials and the parameter bounds searched online."""

    run_id: str
    trials: int
    bounds: dict[str, Any]
    parameter_names: dict[str, str] = Field(
        default_factory=dict,
        description="parameter -> the name people read: w_1 -> 'w[<outcome>]', b_2 -> 'b[<arm>]'",
    )


class RunResponse(BaseModel):
    """A run: its configuration, trial counts, generation state, launch and trials."""

    run_id: str
    created_at: float | None
    objectives: dict[str, Any]
    constraints: dict[str, Any]
    accepted_metrics: list[str] = Field(
        description="metric names results may report: objectives, constraints, offline outcomes"
    )
    bounds: dict[str, Any]
    parameter_names: dict[str, str] = Field(
        default_factory=dict,
        description="parameter -> the name people read: w_1 -> 'w[<outcome>]', b_2 -> 'b[<arm>]'",
    )
    counts: dict[str, int]
    generating: bool
    generation_error: str | None
    waiting_for: str | None
    launch: JSON | None
    trials: list[JSON]


class NextBatchResponse(BaseModel):
    """Issued trials (``state`` ``issued``), or none with the reason and when to poll again."""

    state: Literal["issued", "generating", "awaiting_results"]
    trials: list[JSON]
    detail: str | None = None
    retry_after_s: int | None = None


class ReportResponse(BaseModel):
    """A trial after a report: its status, whether it changed, what is still missing."""

    trial_id: int
    status: str
    changed: bool
    missing_metrics: list[str]
    replayed: bool


class StatusResponse(BaseModel):
    """A trial after a status change."""

    trial_id: int
    status: str
    changed: bool


class ParetoResponse(BaseModel):
    """The online objectives and the trials on the online Pareto frontier."""

    objectives: dict[str, Any]
    frontier: list[JSON]


class CalibrationResponse(BaseModel):
    """Offline OPE estimates vs online results, per policy and metric, and their association."""

    points: list[JSON]
    association: list[JSON]


class LaunchResponse(BaseModel):
    """The launch document (:mod:`pex_tuner.launch.document`) with the policy artifact embedded;
    saved beside the artifact's model file, it loads with ``LaunchedPolicy.load``."""

    format: str
    version: int
    run_id: str
    trial_id: int
    holdout: float
    salt: str
    arms: list[Any]
    policy_artifact: JSON
