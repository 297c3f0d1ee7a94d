"""Decision policies: linear-utility policies over CATE estimates, interpretable tree policies
(with their learner and exports), and policy artifacts."""

from pex_tuner.policies.artifact import PolicyArtifact, load_policy_document, write_artifact
from pex_tuner.policies.export import export_policy
from pex_tuner.policies.greedy_tree import GreedyTreePolicyLearner, policy_rewards
from pex_tuner.policies.linear import LinearUtilityPolicy, stack_policies
from pex_tuner.policies.tree import Condition, Segment, TreePolicy

__all__ = [
    "Condition",
    "GreedyTreePolicyLearner",
    "LinearUtilityPolicy",
    "PolicyArtifact",
    "Segment",
    "TreePolicy",
    "export_policy",
    "load_policy_document",
    "policy_rewards",
    "stack_policies",
    "write_artifact",
]
