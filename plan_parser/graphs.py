"""Mermaid dependency graphs written in plans, read back to cross-check the dependency fields.

The per-phase dependency fields are authoritative; a graph only produces a warning when its
transitive closure differs from theirs (graphs that list transitive edges agree). Node phases
come from `Phase <id>` labels first, then from node ids of the form `P<id>` (`P2_5` is 2.5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from markdown_it.token import Token

from plan_parser.ids import ID_PATTERN

_ARROW = re.compile(
    r"[ \t]{0,8}(?:<?-{2,12}>|<?-\.{1,12}->|<?={2,12}>|--[^->|]{1,80}-->|==[^=>|]{1,80}==>)"
    r"[ \t]{0,8}(?:\|[^|]{0,200}\|)?[ \t]{0,8}"
)
_NODE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(.*)$")
_LABEL_PHASE = re.compile(r"\bphase\s+(" + ID_PATTERN + r")(?![\w])", re.IGNORECASE)
_NODE_PHASE = re.compile(r"^P(\d+(?:[._]\d+)?[A-Za-z]?)$")
_SKIP = re.compile(
    r"^\s*(%%|flowchart\b|graph\b|subgraph\b|end\b|classDef\b|class\b|style\b|linkStyle\b|click\b)"
)


@dataclass
class MermaidGraph:
    line: int
    edges: set[tuple[str, str]] = field(default_factory=set)
    """`(before, after)` phase-id pairs (lower-cased)."""
    phases: set[str] = field(default_factory=set)


def _node_phase(node: str, label: str, labels: dict[str, str]) -> str | None:
    text = label or labels.get(node, "")
    match = _LABEL_PHASE.search(text)
    if match:
        return match.group(1).lower()
    match = _NODE_PHASE.match(node)
    return match.group(1).replace("_", ".").lower() if match else None


def _split_nodes(segment: str) -> list[tuple[str, str]]:
    nodes = []
    for part in segment.split("&"):
        match = _NODE.match(part)
        if match:
            nodes.append((match.group(1), match.group(2).strip()))
    return nodes


def read_mermaid(tokens: list[Token]) -> list[MermaidGraph]:
    graphs = []
    for token in tokens:
        if token.type != "fence" or not token.info.strip().lower().startswith("mermaid"):
            continue
        graph = MermaidGraph(line=(token.map[0] + 1) if token.map else 1)
        labels: dict[str, str] = {}
        chains: list[list[list[tuple[str, str]]]] = []
        for raw in token.content.splitlines():
            if not raw.strip() or _SKIP.match(raw):
                continue
            segments = [_split_nodes(s) for s in _ARROW.split(raw.strip().rstrip(";"))]
            for segment in segments:
                for node, label in segment:
                    if label:
                        labels[node] = label
            if len(segments) > 1:
                chains.append(segments)
        for segments in chains:
            for before, after in zip(segments, segments[1:], strict=False):
                for node_a, label_a in before:
                    for node_b, label_b in after:
                        phase_a = _node_phase(node_a, label_a, labels)
                        phase_b = _node_phase(node_b, label_b, labels)
                        if phase_a and phase_b and phase_a != phase_b:
                            graph.edges.add((phase_a, phase_b))
                            graph.phases.update((phase_a, phase_b))
        if graph.edges:
            graphs.append(graph)
    return graphs


def closure(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """All `(before, after)` pairs reachable through `edges`."""
    following: dict[str, set[str]] = {}
    for before, after in edges:
        following.setdefault(before, set()).add(after)
    result: set[tuple[str, str]] = set()
    for start in following:
        seen: set[str] = set()
        todo = list(following[start])
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            todo.extend(following.get(node, ()))
        result.update((start, node) for node in seen)
    return result
