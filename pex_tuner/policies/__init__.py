"""Decision policies: linear-utility policies over CATE estimates, interpretable tree policies
(with their learners, under one contract, and exports), and policy artifacts.

The multi-step flows that fit CATE models and evaluate learned policies live in
:mod:`pex_tuner.workflows` (``learn_policy``, ``distill_linear_policy``).
"""

from pex_tuner.policies.artifact import PolicyArtifact, load_policy_document, write_artifact
from pex_tuner.policies.base import PolicyLearner
from pex_tuner.policies.distill import DistillPolicyLearner, tree_policy_from_sklearn
from pex_tuner.policies.export import export_policy
from pex_tuner.policies.greedy_tree import GreedyTreePolicyLearner
from pex_tuner.policies.guide import GuidanceTreeLearner, combine_policies
from pex_tuner.policies.linear import LinearUtilityPolicy, stack_policies
from pex_tuner.policies.nohte import NoHTEGreedyPolicyLearner, NoHTEIterativePolicyLearner
from pex_tuner.policies.rewards import policy_rewards, preference_weights
from pex_tuner.policies.tree import TreePolicy
from pex_tuner.rules import Condition, Segment  # the vocabulary of TreePolicy

__all__ = [
    "Condition",
    "DistillPolicyLearner",
    "GreedyTreePolicyLearner",
    "GuidanceTreeLearner",
    "LinearUtilityPolicy",
    "NoHTEGreedyPolicyLearner",
    "NoHTEIterativePolicyLearner",
    "PolicyArtifact",
    "PolicyLearner",
    "Segment",
    "TreePolicy",
    "combine_policies",
    "export_policy",
    "load_policy_document",
    "policy_rewards",
    "preference_weights",
    "stack_policies",
    "tree_policy_from_sklearn",
    "write_artifact",
]
