"""Policy artifacts: everything needed to assign arms to new units, on disk.

An artifact is a JSON document plus, for policies that decide from CATE predictions, the model
file it references (a joblib pickle of the fitted CateModel, shared by all artifacts in the same
folder and checked by SHA-256 on load)::

    {
      "format": "pex-tuner-policy", "version": 1,
      "kind": "linear_utility", "name": "trial_12",
      "policy": {...},            # the policy's own JSON (weights, biases, arms, outcomes)
      "parameters": {...},        # the tuner's parameters for it, if any
      "arms": [...], "outcomes": [...],
      "feature_schema": {...},    # names, kinds, categories of the features
      "model": {"file": "effects.joblib", "sha256": "..."}   # or null
    }

Loading an artifact and assigning arms needs nothing but pex_tuner and the artifact folder.
Security note: the model file is a pickle; load artifacts only from sources you trust.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.errors import InputDataError
from pex_tuner.files import MODEL_FILE, atomic_write, atomic_write_text, sha256_file
from pex_tuner.policies.linear import LinearUtilityPolicy
from pex_tuner.schema import FeatureSchema

__all__ = [
    "ARTIFACT_FORMAT",
    "PolicyArtifact",
    "artifact_document",
    "load_policy_document",
    "read_document",
    "write_artifact",
]

ARTIFACT_FORMAT = "pex-tuner-policy"
ARTIFACT_VERSION = 1


def read_document(path: Path, fmt: str, version: int, what: str) -> dict[str, Any]:
    """Read a versioned pex-tuner JSON document (``{"format": fmt, "version": ...}``).

    ``what`` names the kind of file in error messages ("policy artifact", "launch file").
    Raises InputDataError when the file is missing, not JSON, of another format or version.
    """
    if not path.exists():
        raise InputDataError(f"{what} '{path}' does not exist")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{what} '{path}' is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise InputDataError(f"'{path}' is not a pex-tuner {what} (expected format '{fmt}')")
    if doc.get("version") != version:
        raise InputDataError(
            f"{what} '{path}' has version {doc.get('version')!r}; this pex-tuner reads "
            f"version {version}"
        )
    return doc


def artifact_document(
    policy: Any,
    *,
    schema: FeatureSchema | dict[str, Any],
    model_ref: dict[str, Any] | None,
    parameters: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The JSON document of a policy artifact (see the module docstring).

    Args:
        policy: the policy (``to_dict``, ``arms``, optional ``name`` and ``outcomes``).
        schema: the feature schema (or its ``to_dict``).
        model_ref: ``{"file", "sha256"[, "url"]}`` of the model file, or None.
        parameters: the tuner's parameters of the policy.
    """
    doc = policy.to_dict()
    return {
        "format": ARTIFACT_FORMAT,
        "version": ARTIFACT_VERSION,
        "kind": doc["kind"],
        "name": getattr(policy, "name", None),
        "policy": doc,
        "parameters": parameters,
        "arms": list(policy.arms),
        "outcomes": list(getattr(policy, "outcomes", ())),
        "feature_schema": schema if isinstance(schema, dict) else schema.to_dict(),
        "model": model_ref,
    }


def load_policy_document(doc: dict[str, Any]) -> Any:
    """A policy object from its own JSON document (dispatch on ``kind``)."""
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if kind == "linear_utility":
        return LinearUtilityPolicy.from_dict(doc)
    if kind == "tree":
        from pex_tuner.policies.tree import TreePolicy  # interpretable policies

        return TreePolicy.from_dict(doc)
    raise InputDataError(f"unknown policy kind {kind!r}; expected 'linear_utility' or 'tree'")


def write_artifact(
    path: str | os.PathLike[str],
    policy: Any,
    *,
    schema: FeatureSchema,
    model: Any = None,
    parameters: dict[str, float] | None = None,
) -> Path:
    """Write a policy artifact JSON (and the model file beside it, once per folder).

    Args:
        path: the JSON file to write (its folder is created).
        policy: a LinearUtilityPolicy (needs ``model``) or a policy that assigns from features.
        schema: the feature schema of the experiment.
        model: the fitted CateModel the policy's effects come from.
        parameters: the tuner's parameters of this policy.

    Returns:
        The path written.
    """
    import joblib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model_ref = None
    if isinstance(policy, LinearUtilityPolicy):
        if model is None:
            raise InputDataError("a linear-utility policy artifact needs the CATE model")
        model_path = path.parent / MODEL_FILE
        if not model_path.exists():
            atomic_write(model_path, lambda tmp: joblib.dump(model, tmp))
        model_ref = {"file": MODEL_FILE, "sha256": sha256_file(model_path)}
    doc = artifact_document(policy, schema=schema, model_ref=model_ref, parameters=parameters)
    atomic_write_text(path, json.dumps(doc, indent=2))
    return path


@dataclass(frozen=True, eq=False)
class PolicyArtifact:
    """A loaded artifact: the policy, the feature schema and (lazily) the CATE model."""

    path: Path
    policy: Any
    schema: FeatureSchema
    document: dict[str, Any]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PolicyArtifact:
        path = Path(path)
        doc = read_document(path, ARTIFACT_FORMAT, ARTIFACT_VERSION, "policy artifact")
        policy = load_policy_document(doc["policy"])
        schema = FeatureSchema.from_dict(doc["feature_schema"])
        return cls(path=path, policy=policy, schema=schema, document=doc)

    @property
    def name(self) -> str | None:
        return self.document.get("name")

    def _model(self) -> Any:
        import joblib

        ref = self.document.get("model")
        if not ref:
            raise InputDataError(f"artifact '{self.path}' references no model file")
        model_path = self.path.parent / ref["file"]
        if not model_path.exists():
            raise InputDataError(
                f"artifact '{self.path}' needs its model file '{model_path}', which is missing"
            )
        if sha256_file(model_path) != ref["sha256"]:
            raise InputDataError(
                f"model file '{model_path}' does not match the artifact (SHA-256 differs); it "
                "was replaced after the artifact was written"
            )
        return joblib.load(model_path)

    def assign_index(self, frame: pd.DataFrame) -> np.ndarray:
        """Arm index per row of ``frame`` (which needs the feature columns), shape (n,)."""
        self.schema.validate_frame(frame)
        if isinstance(self.policy, LinearUtilityPolicy):
            pred = self._model().predict(self.schema.encode(frame, validate=False))
            return self.policy.assign_index_from_effects(pred)
        return np.asarray(self.policy.assign_index(frame))

    def assign(self, frame: pd.DataFrame) -> np.ndarray:
        """Arm label per row of ``frame``, object ndarray of shape (n,)."""
        return np.asarray(self.policy.arms, dtype=object)[self.assign_index(frame)]
