"""Execution order: waves of phases that may run together, from the per-phase dependencies.

Dependencies are authoritative (group tables and mermaid graphs only produce warnings). A plan
with no dependency field at all runs in document order, one phase per wave: that is the only
order its author stated. "Parallel with" hints never add ordering.
"""

from __future__ import annotations

import re

from plan_parser.errors import PlanExecutorError
from plan_parser.ids import id_key, id_sort_key
from plan_parser.model import Phase, Plan


class CycleError(PlanExecutorError, ValueError):
    """The dependency graph has a cycle; `cycle` lists its phase ids in order."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        path = " -> ".join(f"Phase {phase_id}" for phase_id in [*cycle, cycle[0]])
        super().__init__(f"dependency cycle: {path}")


def _selected(plan: Plan, include_optional: bool) -> list[Phase]:
    seen: set[str] = set()
    chosen = []
    for phase in plan.phases:
        if (phase.optional and not include_optional) or id_key(phase.id) in seen:
            continue
        seen.add(id_key(phase.id))
        chosen.append(phase)
    return chosen


def dependency_map(plan: Plan, *, include_optional: bool = True) -> dict[str, list[str]]:
    """Phase id → the ids it waits for, restricted to phases in the schedule.

    Ids are the authors' spellings. A left-out optional phase passes its own prerequisites on
    to the phases that depend on it (they still wait for what it waited for); references to
    undefined phases are dropped (validation reports them)."""
    phases = _selected(plan, include_optional)
    canonical = {id_key(phase.id): phase.id for phase in phases}
    if plan.deps_source == "document_order":
        return {
            phase.id: ([phases[index - 1].id] if index else [])
            for index, phase in enumerate(phases)
        }
    declared = _declared_dependencies(plan)
    left_out = {
        id_key(phase.id): declared[id_key(phase.id)]
        for phase in plan.phases
        if id_key(phase.id) not in canonical
    }
    result: dict[str, list[str]] = {}
    for phase in phases:
        deps: set[str] = set()
        todo = list(declared[id_key(phase.id)])
        seen: set[str] = set()
        while todo:
            dep = todo.pop()
            if dep in seen:
                continue
            seen.add(dep)
            if dep in canonical:
                deps.add(canonical[dep])
            elif dep in left_out:
                todo.extend(left_out[dep])
        result[phase.id] = sorted(deps, key=id_sort_key)
    return result


def _declared_dependencies(plan: Plan) -> dict[str, list[str]]:
    """Lower-cased id → lower-cased ids it waits for, from the fields or the mermaid graph."""
    declared: dict[str, list[str]] = {id_key(phase.id): [] for phase in plan.phases}
    if plan.deps_source == "mermaid":
        for before, after, _ in plan.graph_edges:
            if after in declared and before not in declared[after]:
                declared[after].append(before)
        return declared
    for phase in plan.phases:
        declared[id_key(phase.id)].extend(id_key(dep) for dep in phase.depends_on)
    return declared


def find_cycle(plan: Plan) -> list[str] | None:
    """One dependency cycle, or None: ids in execution order (each waits for the one before
    it, the first for the last), starting at the lowest id. Iterative: plans can be long."""
    graph = dependency_map(plan, include_optional=True)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in sorted(graph, key=id_sort_key):
        if root in state:
            continue
        path: list[str] = [root]
        pending: list[list[str]] = [list(graph.get(root, []))]
        state[root] = 1
        while path:
            if not pending[-1]:
                state[path.pop()] = 2
                pending.pop()
                continue
            dep = pending[-1].pop(0)
            if state.get(dep) == 1:
                cycle = list(reversed(path[path.index(dep) :]))
                first = cycle.index(min(cycle, key=id_sort_key))
                return cycle[first:] + cycle[:first]
            if dep not in state:
                state[dep] = 1
                path.append(dep)
                pending.append(list(graph.get(dep, [])))
    return None


def _layers(plan: Plan, include_optional: bool) -> list[list[str]]:
    """Kahn layers of the dependency graph alone."""
    graph = dependency_map(plan, include_optional=include_optional)
    remaining = {node: set(deps) for node, deps in graph.items()}
    layers: list[list[str]] = []
    while remaining:
        ready = sorted((n for n, deps in remaining.items() if not deps), key=id_sort_key)
        if not ready:
            raise CycleError(find_cycle(plan) or sorted(remaining, key=id_sort_key))
        layers.append(ready)
        for node in ready:
            del remaining[node]
        for deps in remaining.values():
            deps.difference_update(ready)
    return layers


def _apart(plan: Plan) -> dict[str, set[str]]:
    """Phase id → the phases a prose note says it must not run with."""
    apart: dict[str, set[str]] = {}
    for note in plan.serial_notes:
        for phase_id in note.phase_ids:
            apart.setdefault(phase_id, set()).update(set(note.phase_ids) - {phase_id})
    return apart


def _split(layer: list[str], exclusive: set[str], apart: dict[str, set[str]]) -> list[list[str]]:
    """One dependency layer as waves in which no phase marked not parallel has company and no
    two phases a note keeps apart meet. Sub-waves keep the layer's order, so every dependency
    still ran in an earlier wave."""
    if len(layer) < 2:
        return [layer]
    shared: list[list[str]] = []
    alone: list[list[str]] = []
    for phase_id in layer:
        if phase_id in exclusive:
            alone.append([phase_id])
            continue
        avoid = apart.get(phase_id, set())
        target = next((wave for wave in shared if not avoid & set(wave)), None)
        if target is None:
            shared.append([phase_id])
        else:
            target.append(phase_id)
    return sorted(shared + alone, key=lambda wave: id_sort_key(wave[0]))


def waves(plan: Plan, *, include_optional: bool = False) -> list[list[str]]:
    """Kahn layers: each wave holds the phases whose dependencies all ran in earlier waves.

    A phase marked not parallel gets a wave of its own, and phases a prose note keeps apart
    never share one (see :func:`serialised`). Waves are sorted by
    :func:`plan_parser.id_sort_key`. Optional (future, do-not-execute) phases are left out
    unless asked for. Raises :class:`CycleError` naming the cycle.
    """
    exclusive = {phase.id for phase in plan.phases if phase.exclusive}
    apart = _apart(plan)
    return [
        wave
        for layer in _layers(plan, include_optional)
        for wave in _split(layer, exclusive, apart)
    ]


def serialised(plan: Plan, *, include_optional: bool = False) -> dict[str, str]:
    """Phase id → why it does not run with the phases its dependencies would let it run with,
    for every phase the plan's own words took out of a shared wave."""
    by_id = {phase.id: phase for phase in plan.phases}
    apart = _apart(plan)
    reasons: dict[str, str] = {}
    for layer in _layers(plan, include_optional):
        if len(layer) < 2:
            continue
        for phase_id in layer:
            phase = by_id[phase_id]
            others = [other for other in layer if other != phase_id]
            with_ = f"Phase{'s' if len(others) > 1 else ''} {', '.join(others)}"
            if phase.exclusive:
                line = phase.field_lines.get("parallel", phase.line)
                reasons[phase_id] = (
                    f"marked not parallel ('{phase.parallel_hint}', line {line}): runs alone, "
                    f"not in one wave with {with_}"
                )
                continue
            met = sorted(apart.get(phase_id, set()) & set(layer), key=id_sort_key)
            if met:
                note = next(
                    n
                    for n in plan.serial_notes
                    if phase_id in n.phase_ids and met[0] in n.phase_ids
                )
                reasons[phase_id] = (
                    f"must not run with Phase {', '.join(met)} (note at line {note.line})"
                )
    return reasons


def transitive_dependents(plan: Plan, phase_id: str) -> set[str]:
    """Every phase that waits, directly or not, for `phase_id` (optional phases included)."""
    graph = dependency_map(plan, include_optional=True)
    dependents: dict[str, set[str]] = {node: set() for node in graph}
    for node, deps in graph.items():
        for dep in deps:
            dependents.setdefault(dep, set()).add(node)
    start = next((node for node in dependents if id_key(node) == id_key(phase_id)), None)
    if start is None:
        return set()
    found: set[str] = set()
    todo = [start]
    while todo:
        for child in dependents.get(todo.pop(), set()):
            if child not in found:
                found.add(child)
                todo.append(child)
    found.discard(start)
    return found


def _node(phase_id: str) -> str:
    return "P" + re.sub(r"\W", "_", phase_id)


def _label(text: str) -> str:
    return text.replace('"', "'").replace("\n", " ")


def mermaid(plan: Plan) -> str:
    """A `flowchart TD` of the phases and their dependencies; optional phases drawn dashed."""
    lines = ["flowchart TD"]
    graph = dependency_map(plan, include_optional=True)
    by_id = {phase.id: phase for phase in plan.phases}
    for phase_id in graph:
        phase = by_id[phase_id]
        lines.append(f'    {_node(phase_id)}["Phase {phase_id}: {_label(phase.title)}"]')
    for phase_id, deps in graph.items():
        for dep in deps:
            lines.append(f"    {_node(dep)} --> {_node(phase_id)}")
    optional = [_node(p.id) for p in plan.phases if p.optional and p.id in graph]
    if optional:
        lines.append("    classDef optional stroke-dasharray: 5 5")
        lines.append(f"    class {','.join(optional)} optional")
    return "\n".join(lines) + "\n"
