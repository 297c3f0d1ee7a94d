"""Decision policies: linear-utility policies over CATE estimates."""

from pex_tuner.policies.linear import LinearUtilityPolicy, stack_policies

__all__ = ["LinearUtilityPolicy", "stack_policies"]
