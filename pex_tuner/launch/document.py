"""The launch document: the one writer and reader of the launch format, and the holdout bounds.

A launch is a small JSON document. Both ways of launching write it here: ``LaunchedPolicy.save``
(a policy artifact on disk, referenced by path) and the service's ``POST /v1/runs/{run}/launch``
(the artifact embedded, since the service holds no files)::

    {"format": "pex-tuner-launch", "version": 1, "holdout": 0.05, "salt": "9f2c...",
     "arms": [...],
     "policy": "policies/trial_12.json",   # relative to the launch file's folder, or
     "policy_artifact": {...},             # the artifact document itself (the service's)
     "created_at": "2024-05-01T12:00:00+00:00",   # optional
     "run_id": "...", "trial_id": 12}             # optional: where the policy was tested

Exactly one of ``policy`` and ``policy_artifact`` is present. An embedded artifact's model file
(``policy_artifact.model.file``, downloadable from ``policy_artifact.model.url``) is looked up
beside the launch file, as it would be beside a standalone artifact.

The holdout fraction is bounded by :data:`HOLDOUT_RANGE` (2% to 5% of traffic): the service's
request body and :class:`~pex_tuner.launch.holdout.LaunchedPolicy` both read it from here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pex_tuner.errors import ConfigurationError, InputDataError

__all__ = [
    "HOLDOUT_RANGE",
    "LAUNCH_FORMAT",
    "LAUNCH_VERSION",
    "check_holdout",
    "is_launch_file",
    "launch_document",
    "load_launch_artifact",
    "read_launch_document",
]

LAUNCH_FORMAT = "pex-tuner-launch"
LAUNCH_VERSION = 1
#: Allowed holdout fractions, inclusive: 2% to 5% of traffic.
HOLDOUT_RANGE = (0.02, 0.05)
_REQUIRED = ("holdout", "salt")


def check_holdout(holdout: Any) -> float:
    """``holdout`` as a float in :data:`HOLDOUT_RANGE`; ConfigurationError otherwise."""
    lo, hi = HOLDOUT_RANGE
    try:
        h = float(holdout)
    except (TypeError, ValueError):
        h = float("nan")
    if not lo <= h <= hi:
        raise ConfigurationError(
            f"'holdout' must be a fraction between {lo} and {hi} (2% to 5% of traffic); got "
            f"{holdout!r}"
        )
    return h


def launch_document(
    *,
    holdout: float,
    salt: str,
    arms: list[str],
    policy: str | None = None,
    policy_artifact: dict[str, Any] | None = None,
    created_at: str | None = None,
    run_id: str | None = None,
    trial_id: int | None = None,
) -> dict[str, Any]:
    """A launch document (see the module docstring); optional fields left out when None.

    Args:
        holdout: holdout fraction, in :data:`HOLDOUT_RANGE`.
        salt: the hash salt of the assignment.
        arms: arm labels of the policy, control first.
        policy: path of the policy artifact (POSIX, relative to the launch file's folder).
        policy_artifact: the policy artifact document, embedded instead of ``policy``.
        created_at: ISO 8601 time of the launch.
        run_id, trial_id: the online run and trial the policy was tested in.
    """
    if (policy is None) == (policy_artifact is None):
        raise ConfigurationError(
            "a launch document takes exactly one of 'policy' and 'policy_artifact'"
        )
    doc: dict[str, Any] = {"format": LAUNCH_FORMAT, "version": LAUNCH_VERSION}
    optional = {"run_id": run_id, "trial_id": trial_id}
    doc.update({k: v for k, v in optional.items() if v is not None})
    doc.update(holdout=check_holdout(holdout), salt=salt, arms=list(arms))
    if policy is not None:
        doc["policy"] = policy
    else:
        doc["policy_artifact"] = policy_artifact
    if created_at is not None:
        doc["created_at"] = created_at
    return doc


def read_launch_document(path: Path) -> dict[str, Any]:
    """Read and check a launch file: format, version and required fields.

    Raises InputDataError when the file is missing, not a launch document of this version, or
    lacks a field.
    """
    from pex_tuner.policies.artifact import read_document

    doc = read_document(path, LAUNCH_FORMAT, LAUNCH_VERSION, "launch file")
    missing = [k for k in _REQUIRED if k not in doc]
    if "policy" not in doc and "policy_artifact" not in doc:
        missing.append("policy")
    if missing:
        raise InputDataError(f"launch file '{path}' lacks field(s) {missing}")
    return doc


def load_launch_artifact(path: Path, doc: dict[str, Any]) -> Any:
    """The PolicyArtifact a launch document refers to (by path, or embedded).

    An embedded artifact is given the launch file's path, so that its model file is found
    beside the launch file.
    """
    from pex_tuner.policies.artifact import (
        ARTIFACT_FORMAT,
        ARTIFACT_VERSION,
        PolicyArtifact,
        load_policy_document,
    )
    from pex_tuner.schema import FeatureSchema

    if "policy" in doc:
        return PolicyArtifact.load(path.parent / doc["policy"])
    art = doc["policy_artifact"]
    if not isinstance(art, dict) or (art.get("format"), art.get("version")) != (
        ARTIFACT_FORMAT,
        ARTIFACT_VERSION,
    ):
        raise InputDataError(
            f"launch file '{path}' embeds a 'policy_artifact' that is not a pex-tuner policy "
            f"artifact (expected format '{ARTIFACT_FORMAT}', version {ARTIFACT_VERSION})"
        )
    # PolicyArtifact.load reads only files; an embedded document is built the same way
    return PolicyArtifact(
        path=path,
        policy=load_policy_document(art["policy"]),
        schema=FeatureSchema.from_dict(art["feature_schema"]),
        document=art,
    )


def is_launch_file(path: Path) -> bool:
    """Whether ``path`` holds a launch document (an embedded artifact's path is its launch file)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == LAUNCH_FORMAT
