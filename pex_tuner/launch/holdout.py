"""LaunchedPolicy: a policy artifact plus a randomized holdout, with deterministic assignment.

The launch design, for a unit with features x and policy arm ``pi(x)`` among K arms:

* with probability ``h`` (the holdout fraction) the unit joins the *holdout* and gets an arm
  drawn uniformly from all K arms (the policy arm included);
* otherwise it joins the *policy* group and gets ``pi(x)``.

So the probability that the unit is logged with arm ``a`` (its propensity, whichever group it
fell in) is::

    p(a | x) = (1 - h) * 1[a == pi(x)] + h / K

which is ``(1 - h) + h / K`` for the policy arm and ``h / K`` for every other arm. That is the
propensity to log for off-policy evaluation and retraining: it is positive for every arm, so the
launch traffic is itself a (non-uniform) randomized experiment.

Both coin flips are derived from a hash, not from a random generator, so the same unit gets the
same group and arm on every call, in any batch, in any process: the 16-byte BLAKE2b digest of
``"<salt>:<str(unit id)>"`` is split into two 64-bit integers; the first gives a uniform
``u1`` in [0, 1) (holdout iff ``u1 < h``), the second a uniform ``u2`` in [0, 1) (holdout arm
``floor(u2 * K)``). The halves of a cryptographic digest are independent for all practical
purposes. Ids are hashed as ``str(value)``, so the integer ``7`` and the string ``"7"`` are the
same unit, but the float ``7.0`` is not. Hashing runs a Python loop over hashlib, about 0.07 s
per 100,000 units.

A launch is saved as a small JSON document beside (or near) its policy artifact; the format,
and the 2-5% bounds of the holdout, belong to :mod:`pex_tuner.launch.document`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.launch.document import (
    check_holdout,
    is_launch_file,
    launch_document,
    load_launch_artifact,
    read_launch_document,
)

__all__ = ["HOLDOUT_GROUP", "POLICY_GROUP", "LaunchedPolicy", "hash_uniforms", "launch_policy"]

POLICY_GROUP = "policy"
HOLDOUT_GROUP = "holdout"
_TWO_53 = float(2**53)


def hash_uniforms(ids: Any, salt: str) -> np.ndarray:
    """Two independent uniforms in [0, 1) per id, from BLAKE2b of ``"<salt>:<str(id)>"``.

    Args:
        ids: unit ids, array-like of shape (n_units,).
        salt: the launch's salt.

    Returns:
        float ndarray of shape (n_units, 2): column 0 decides the holdout, column 1 the arm.
    """
    digests = b"".join(
        hashlib.blake2b(f"{salt}:{v}".encode(), digest_size=16).digest()
        for v in np.asarray(ids, dtype=object).tolist()
    )
    words = np.frombuffer(digests, dtype=">u8").reshape(-1, 2)
    # the top 53 bits of each word give a uniform double in [0, 1)
    return (words >> np.uint64(11)).astype(np.float64) / _TWO_53


def _unit_ids(frame: pd.DataFrame, unit_id: str) -> pd.Series:
    if not isinstance(frame, pd.DataFrame):
        raise InputDataError(f"expected a DataFrame of units; got {type(frame).__name__}")
    if unit_id not in frame.columns:
        raise InputDataError(
            f"frame lacks the unit id column '{unit_id}'; pass unit_id=<column> naming the "
            "column that identifies each unit"
        )
    ids = frame[unit_id]
    n_missing = int(ids.isna().sum())
    if n_missing:
        raise InputDataError(
            f"unit id column '{unit_id}' has {n_missing} missing value(s); every unit needs an id"
        )
    dup = ids.duplicated(keep=False)
    if dup.any():
        examples = list(dict.fromkeys(ids[dup].tolist()))[:5]
        raise InputDataError(
            f"unit id column '{unit_id}' has {int(ids.duplicated().sum())} duplicated value(s), "
            f"e.g. {examples}; each unit must appear once"
        )
    return ids


@dataclass(frozen=True, kw_only=True, eq=False)
class LaunchedPolicy:
    """A launched policy: a policy artifact, a holdout fraction and the salt of the hash.

    Create one with :func:`launch_policy` (which draws the salt) or :meth:`load`.

    Attributes:
        artifact: the policy artifact (``PolicyArtifact``, or anything with
            ``assign_index(frame)`` and ``policy.arms``; ``path`` too, to be saved).
        holdout: fraction of units in the uniformly randomized holdout, in [0.02, 0.05].
        salt: the hash salt; keep it to reproduce the assignment, change it to reshuffle.
        created_at: ISO 8601 time of the launch (UTC).
    """

    artifact: Any
    holdout: float = 0.05
    salt: str
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "holdout", check_holdout(self.holdout))
        if not isinstance(self.salt, str) or not self.salt:
            raise ConfigurationError(f"'salt' must be a non-empty string; got {self.salt!r}")
        if not hasattr(self.artifact, "assign_index") or not hasattr(
            getattr(self.artifact, "policy", None), "arms"
        ):
            raise ConfigurationError(
                "'artifact' must be a PolicyArtifact (with assign_index(frame) and policy.arms); "
                f"got {type(self.artifact).__name__}"
            )

    @property
    def arms(self) -> tuple[str, ...]:
        """Arm labels of the policy, control first."""
        return tuple(str(a) for a in self.artifact.policy.arms)

    @property
    def n_arms(self) -> int:
        """Number of arms K."""
        return len(self.arms)

    def propensity(self, arm_index: np.ndarray, policy_index: np.ndarray) -> np.ndarray:
        """``(1 - h) * 1[arm == policy arm] + h / K`` elementwise, shape (n_units,)."""
        h = self.holdout
        return (1.0 - h) * (np.asarray(arm_index) == np.asarray(policy_index)) + h / self.n_arms

    def assign(self, frame: pd.DataFrame, *, unit_id: str = "unit_id") -> pd.DataFrame:
        """Assign arms to units under the launch design.

        Deterministic per unit: a unit's group and arm depend only on its id, its features and
        the salt, not on the other rows of ``frame``.

        Args:
            frame: units, DataFrame of shape (n_units, ...) with the unit id column and the
                policy's feature columns.
            unit_id: name of the column of unique unit ids.

        Returns:
            DataFrame of shape (n_units, 5) indexed like ``frame``, columns: ``<unit_id>``,
            ``arm`` (label), ``group`` (``"policy"`` or ``"holdout"``), ``propensity``
            (probability of that arm under the design) and ``policy_arm`` (what the policy
            alone would have chosen).
        """
        ids = _unit_ids(frame, unit_id)
        n = len(frame)
        labels = np.asarray(self.arms, dtype=object)
        if n == 0:
            policy_index = np.zeros(0, dtype=np.int64)
        else:
            policy_index = np.asarray(self.artifact.assign_index(frame), dtype=np.int64)
        u = hash_uniforms(ids.to_numpy(), self.salt) if n else np.zeros((0, 2))
        in_holdout = u[:, 0] < self.holdout
        random_arm = np.minimum((u[:, 1] * self.n_arms).astype(np.int64), self.n_arms - 1)
        arm_index = np.where(in_holdout, random_arm, policy_index)
        return pd.DataFrame(
            {
                unit_id: ids.to_numpy(),
                "arm": labels[arm_index],
                "group": np.where(in_holdout, HOLDOUT_GROUP, POLICY_GROUP).astype(object),
                "propensity": self.propensity(arm_index, policy_index),
                "policy_arm": labels[policy_index],
            },
            index=frame.index,
        )

    # ------------------------------------------------------------------ persistence
    def to_dict(self, *, relative_to: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """The launch document; the policy path is made relative to ``relative_to`` if given.

        A policy loaded embedded in a launch file stays embedded (``policy_artifact``)."""
        path = getattr(self.artifact, "path", None)
        if path is None:
            raise InputDataError(
                "this launch's artifact has no 'path'; save the policy with write_artifact and "
                "launch the loaded PolicyArtifact"
            )
        fields: dict[str, Any] = {
            "holdout": self.holdout,
            "salt": self.salt,
            "arms": list(self.arms),
            "created_at": self.created_at,
        }
        if is_launch_file(Path(path)):
            return launch_document(**fields, policy_artifact=self.artifact.document)
        policy_path = Path(path).resolve()
        if relative_to is not None:
            policy_path = Path(os.path.relpath(policy_path, Path(relative_to).resolve()))
        return launch_document(**fields, policy=policy_path.as_posix())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the launch document to ``path`` atomically (temp file + rename).

        The policy artifact is referenced by its path relative to ``path``'s folder, so the two
        can move together.
        """
        from pex_tuner.files import atomic_write_text

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = self.to_dict(relative_to=path.parent)
        atomic_write_text(path, json.dumps(doc, indent=2))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LaunchedPolicy:
        """Read a launch document and its policy artifact (referenced by path, or embedded, as
        the service's launch endpoint writes it; see :mod:`pex_tuner.launch.document`)."""
        path = Path(path)
        doc = read_launch_document(path)
        artifact = load_launch_artifact(path, doc)
        extra = {"created_at": str(doc["created_at"])} if doc.get("created_at") else {}
        launched = cls(artifact=artifact, holdout=doc["holdout"], salt=doc["salt"], **extra)
        if "arms" in doc and list(doc["arms"]) != list(launched.arms):
            raise InputDataError(
                f"launch file '{path}' was made for arms {doc['arms']}, but its policy artifact "
                f"now has arms {list(launched.arms)}"
            )
        return launched


def launch_policy(
    artifact: Any, *, holdout: float = 0.05, salt: str | None = None
) -> LaunchedPolicy:
    """Launch a policy with a randomized holdout.

    Args:
        artifact: a ``PolicyArtifact`` or the path of one.
        holdout: fraction of units given a uniformly random arm, in [0.02, 0.05].
        salt: hash salt; a random 128-bit token by default. It is stored with the launch, so
            assignment stays reproducible after :meth:`LaunchedPolicy.save`.

    Returns:
        LaunchedPolicy.
    """
    if isinstance(artifact, str | os.PathLike):
        from pex_tuner.policies.artifact import PolicyArtifact

        artifact = PolicyArtifact.load(artifact)
    return LaunchedPolicy(
        artifact=artifact,
        holdout=holdout,
        salt=secrets.token_hex(16) if salt is None else salt,
    )
