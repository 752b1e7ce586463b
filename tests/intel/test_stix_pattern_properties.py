"""Property: any AND/OR tree of supported comparisons reduces to its disjunctive normal form."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from vedette.intel.stix_pattern import parse_pattern, reduce_pattern

LEAVES = [
    ("ipv4-addr:value", "ip", "192.0.2.{}"),
    ("domain-name:value", "domain", "host{}.example"),
    ("url:value", "url", "http://x.example/{}"),
    ("file:hashes.'SHA-256'", "sha256", "{:064x}"),
    ("email-addr:value", "email", "user{}@example.org"),
]

leaf = st.tuples(st.sampled_from(LEAVES), st.integers(0, 255)).map(
    lambda pair: ("leaf", pair[0][0], pair[0][1], pair[0][2].format(pair[1]))
)
tree = st.recursive(
    leaf,
    lambda children: st.tuples(st.sampled_from(["AND", "OR"]), st.lists(children, min_size=2,
                                                                        max_size=3)),
    max_leaves=6,
)  # fmt: skip


def render(node: Any) -> str:
    if node[0] == "leaf":
        value = node[3].replace("'", "\\'")
        return f"{node[1]} = '{value}'"
    op, items = node
    return "(" + f" {op} ".join(render(item) for item in items) + ")"


def dnf(node: Any) -> list[list[tuple[str, str]]]:
    if node[0] == "leaf":
        return [[(node[2], node[3])]]
    op, items = node
    parts = [dnf(item) for item in items]
    if op == "OR":
        return [conj for part in parts for conj in part]
    product: list[list[tuple[str, str]]] = [[]]
    for part in parts:
        product = [left + right for left in product for right in part]
    return product


@settings(max_examples=100, deadline=None)
@given(tree)
def test_reduction_is_the_dnf_of_the_expression(node: Any) -> None:
    pattern = f"[{render(node)}]"
    assert reduce_pattern(parse_pattern(pattern)) == dnf(node)


@settings(max_examples=50, deadline=None)
@given(st.lists(tree, min_size=1, max_size=3))
def test_or_between_observations_concatenates_alternatives(nodes: list[Any]) -> None:
    pattern = " OR ".join(f"[{render(node)}]" for node in nodes)
    expected = [conj for node in nodes for conj in dnf(node)]
    assert reduce_pattern(parse_pattern(pattern)) == expected
