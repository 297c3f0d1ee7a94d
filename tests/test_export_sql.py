"""Every deployment path of a TreePolicy assigns the same arms: a property test over random
trees (depths 0-3, numeric and categorical conditions, learned missing directions) and random
rows with NULL / NaN values and values exactly at the thresholds, run through SQLite."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pex_tuner.policies import TreePolicy
from pex_tuner.policies.export import to_json, to_python, to_sql
from pex_tuner.rules import MISSING_SPLIT, Condition, Segment, conjoin

FEATURES = ("x0", "x1", "plat")
KINDS = ("numeric", "numeric", "categorical")
CATS = ("a", "b", "c")
ARMS = ("control", "arm_1", "arm_2")
THRESHOLDS = (-1.0, 0.0, 0.5, 1.0)
VALUES = (*THRESHOLDS, -2.0, 0.25, 3.0, None)

missing_flags = st.sampled_from([None, True, False])
numeric_conditions = st.builds(
    Condition,
    feature=st.sampled_from(["x0", "x1"]),
    op=st.sampled_from(["<=", ">"]),
    value=st.sampled_from(THRESHOLDS),
    missing=missing_flags,
)
categorical_conditions = st.builds(
    Condition,
    feature=st.just("plat"),
    op=st.sampled_from(["in", "not in"]),
    value=st.lists(st.sampled_from(CATS), min_size=1, max_size=2, unique=True),
    missing=missing_flags,
)
splits = st.one_of(numeric_conditions, categorical_conditions)


def _complement(c: Condition) -> Condition:
    """The other side of a split: missing values go to exactly one side (with ``missing``
    None, the fixed rule is complementary too: ``<=`` / ``in`` fail, ``>`` / ``not in`` hold)."""
    other = {"<=": ">", ">": "<=", "in": "not in", "not in": "in"}[c.op]
    missing = None if c.missing is None else not c.missing
    return Condition(c.feature, other, c.value, missing)  # type: ignore[arg-type]


@st.composite
def trees(draw) -> TreePolicy:
    """A random binary tree of depth 0-3, its leaves turned into segments as the learners
    do (merged conditions; the default arm's leaves dropped)."""
    depth = draw(st.integers(0, 3))
    leaves: list[tuple[list[Condition], str]] = []

    def grow(path: list[Condition], d: int) -> None:
        if d == depth or (d > 0 and draw(st.booleans())):
            leaves.append((path, draw(st.sampled_from(ARMS))))
            return
        split = draw(splits)
        grow([*path, split], d + 1)
        grow([*path, _complement(split)], d + 1)

    grow([], 0)
    default = draw(st.sampled_from(ARMS))
    segments = []
    for path, arm in leaves:
        conds = conjoin(path) if path else None
        if arm != default and conds:
            segments.append(Segment(conds, arm))
    return TreePolicy(
        segments=tuple(segments),
        default_arm=default,
        arms=ARMS,
        features=FEATURES,
        feature_kinds=KINDS,
    )


rows = st.lists(
    st.tuples(st.sampled_from(VALUES), st.sampled_from(VALUES), st.sampled_from((*CATS, None))),
    min_size=1,
    max_size=25,
)


def _frame(data: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x0": pd.array([np.nan if r[0] is None else r[0] for r in data], dtype=float),
            "x1": pd.array([np.nan if r[1] is None else r[1] for r in data], dtype=float),
            "plat": pd.Series([r[2] for r in data], dtype=object),
        }
    )


def sqlite_assign(sql: str, data: list[tuple]) -> list[str]:
    con = sqlite3.connect(":memory:")
    try:
        con.execute('CREATE TABLE units (i INTEGER, "x0" REAL, "x1" REAL, "plat" TEXT)')
        con.executemany(
            "INSERT INTO units VALUES (?, ?, ?, ?)", [(i, *r) for i, r in enumerate(data)]
        )
        return [r[0] for r in con.execute(f"SELECT {sql} AS arm FROM units ORDER BY i")]
    finally:
        con.close()


def python_assign(source: str, data: list[tuple], *, nan: bool) -> list[str]:
    namespace: dict = {}
    exec(source, namespace)
    missing = float("nan") if nan else None
    out = []
    for x0, x1, plat in data:
        row = {
            "x0": missing if x0 is None else x0,
            "x1": missing if x1 is None else x1,
            "plat": plat,
        }
        out.append(namespace["assign"](row))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=trees(), data=rows)
def test_sql_python_and_json_exports_equal_assign(policy: TreePolicy, data: list[tuple]):
    expected = policy.assign(_frame(data)).tolist()
    assert sqlite_assign(to_sql(policy), data) == expected
    assert python_assign(to_python(policy), data, nan=False) == expected
    assert python_assign(to_python(policy), data, nan=True) == expected
    again = TreePolicy.from_json(to_json(policy))
    assert again == policy
    assert again.assign(_frame(data)).tolist() == expected


def test_depth_zero_tree_exports_are_valid_everywhere():
    policy = TreePolicy(
        segments=(),
        default_arm="small",
        arms=("big", "small"),
        features=("x",),
        feature_kinds=("numeric",),
    )
    assert to_sql(policy) == "'small'"
    con = sqlite3.connect(":memory:")
    con.execute('CREATE TABLE units ("x" REAL)')
    con.executemany("INSERT INTO units VALUES (?)", [(1.0,), (None,)])
    assert [r[0] for r in con.execute(f"SELECT {to_sql(policy)} AS arm FROM units")] == [
        "small",
        "small",
    ]
    namespace: dict = {}
    exec(to_python(policy), namespace)
    assert namespace["assign"]({}) == "small"
    assert TreePolicy.from_json(to_json(policy)) == policy
    frame = pd.DataFrame({"x": [1.0, np.nan]})
    assert policy.assign(frame).tolist() == ["small", "small"]


def test_missing_only_split_round_trips_through_every_path():
    """A split that sends every missing value one way and every present value the other
    (scikit-learn's threshold inf) reads "x is missing" and routes identically."""
    is_missing = Condition("x0", ">", MISSING_SPLIT, True)
    assert str(is_missing) == "x0 is missing"
    assert str(Condition("x0", "<=", MISSING_SPLIT, False)) == "x0 is not missing"
    policy = TreePolicy(
        segments=(Segment((is_missing,), "arm_1"),),
        default_arm="control",
        arms=ARMS,
        features=FEATURES,
        feature_kinds=KINDS,
    )
    data = [(None, 0.0, "a"), (1e300, 0.0, "a"), (-5.0, None, None)]
    expected = ["arm_1", "control", "control"]
    assert policy.assign(_frame(data)).tolist() == expected
    assert sqlite_assign(to_sql(policy), data) == expected
    assert python_assign(to_python(policy), data, nan=True) == expected
    assert not math.isinf(float(is_missing.value))  # type: ignore[arg-type]
