"""Decision policies: linear-utility policies over CATE estimates, and policy artifacts."""

from pex_tuner.policies.artifact import PolicyArtifact, load_policy_document, write_artifact
from pex_tuner.policies.linear import LinearUtilityPolicy, stack_policies

__all__ = [
    "LinearUtilityPolicy",
    "PolicyArtifact",
    "load_policy_document",
    "stack_policies",
    "write_artifact",
]
