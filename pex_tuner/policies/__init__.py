"""Decision policies: linear-utility policies over CATE estimates, interpretable tree policies
(with their learner and exports), and policy artifacts."""

from pex_tuner.policies.artifact import PolicyArtifact, load_policy_document, write_artifact
from pex_tuner.policies.distill import (
    DistillationReport,
    DistillPolicyLearner,
    distill_linear_policy,
    tree_policy_from_sklearn,
)
from pex_tuner.policies.export import export_policy
from pex_tuner.policies.greedy_tree import GreedyTreePolicyLearner, policy_rewards
from pex_tuner.policies.guide import GuidanceTreeLearner, combine_policies
from pex_tuner.policies.learners import (
    METHODS,
    LearnedPolicy,
    learn_policy,
    preference_weights,
)
from pex_tuner.policies.linear import LinearUtilityPolicy, stack_policies
from pex_tuner.policies.nohte import NoHTEGreedyPolicyLearner, NoHTEIterativePolicyLearner
from pex_tuner.policies.tree import Condition, Segment, TreePolicy, conjoin

__all__ = [
    "METHODS",
    "Condition",
    "DistillPolicyLearner",
    "DistillationReport",
    "GreedyTreePolicyLearner",
    "GuidanceTreeLearner",
    "LearnedPolicy",
    "LinearUtilityPolicy",
    "NoHTEGreedyPolicyLearner",
    "NoHTEIterativePolicyLearner",
    "PolicyArtifact",
    "Segment",
    "TreePolicy",
    "combine_policies",
    "conjoin",
    "distill_linear_policy",
    "export_policy",
    "learn_policy",
    "load_policy_document",
    "policy_rewards",
    "preference_weights",
    "stack_policies",
    "tree_policy_from_sklearn",
    "write_artifact",
]
