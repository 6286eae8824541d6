"""Whole-graph checks of the IVR flows: what ``callcenter check`` refuses before a caller hears it.

:func:`graph_problems` works on the parsed config data and checks the flows that validate
(the models report the others). Every problem is ``(path into the data, message)``, so the
loader can print ``file:line: field: message``. The rules:

* **Loops that wait for nobody**: a cycle of nodes a call can run round without the caller
  pressing a key (a menu's ``default`` back to itself, play -> branch -> play ...).
* **Input nodes without a way out**: a menu, collect or callback node from which no path
  reaches a queue, transfer, voicemail or hang-up.
* **Subflows**: a ``return`` reachable in a flow a route runs directly, and subflows that
  nest deeper than :data:`MAX_SUBFLOW_DEPTH` (recursion).
* **Transfers** to numbers that ``ivr.transfer_allow`` does not list; a ``to`` taken from a
  variable needs a ``fallback`` (it can only be refused while the call runs).
* **Variables** used (``${name}``, ``variable:``, ``priority_from:``) but set nowhere, and
  built-in variables (``caller_num`` ...) that a node tries to set.
* **Prompt files** missing from ``ivr.prompt_folder`` (when set), for every language a call
  can be in at that node (``ivr.default_language`` and the ``language`` nodes before it).

Unknown node/flow/queue references and nodes unreachable within their flow are checked on the
raw data by :func:`callcenter.config.models.reference_problems`.

The graph is expanded per subflow call site (a state is the subflow call stack, the flow, the
node and the prompt language), so a subflow used twice is not mistaken for a loop.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from callcenter.config.models import (
    INPUT_EDGES,
    BranchNode,
    CallbackNode,
    CollectNode,
    FlowConfig,
    GotoNode,
    HangupNode,
    IvrConfig,
    LanguageNode,
    LookupNode,
    MenuNode,
    Node,
    PlayNode,
    QueueFiguresNode,
    QueueNode,
    ReturnNode,
    SetNode,
    SubflowNode,
    TransferNode,
    VoicemailNode,
    did_you_mean,
    node_edges,
)
from callcenter.ivr.values import (
    BUILTIN_VARIABLES,
    QUEUE_FIGURES,
    has_variables,
    matches_any,
    names_in,
)
from callcenter.pbx.interface import REPORT_HOLD_PROMPT

Path_ = tuple[object, ...]
GraphProblem = tuple[Path_, str]

MAX_SUBFLOW_DEPTH = 8
"""Subflows may call subflows this deep; deeper is taken for recursion."""
MAX_STATES = 50_000
"""Expanded states examined at most (a guard for very large configs)."""

EXIT_KINDS = frozenset({"queue", "transfer", "hangup", "voicemail"})
"""Nodes that end the IVR part of a call (a transfer and a voicemail may also go on)."""

INPUT_KINDS = frozenset({"menu", "collect", "callback"})

_UNKNOWN_CALLER = ("", "")
"""Stack entry for a flow analysed on its own: its ``return`` leaves to an unknown caller."""


@dataclass(frozen=True, slots=True)
class _State:
    stack: tuple[tuple[str, str], ...]
    flow: str
    node: str
    language: str


@dataclass(frozen=True, slots=True)
class _Edge:
    target: _State
    consumes_input: bool


def graph_problems(data: Mapping[Any, Any], base_dir: Path | None) -> list[GraphProblem]:
    """Every graph-level problem of the flows in ``data`` (see the module docstring)."""
    flows_data = data.get("flows")
    if not isinstance(flows_data, Mapping):
        return []
    flows: dict[str, FlowConfig] = {}
    for name, flow_data in flows_data.items():
        if not isinstance(name, str):
            continue
        try:
            flows[name] = FlowConfig.model_validate(flow_data)
        except ValidationError:
            continue
    ivr_data = data.get("ivr")
    try:
        ivr: IvrConfig | None = IvrConfig.model_validate(ivr_data if ivr_data is not None else {})
    except ValidationError:
        ivr = None
    checker = _Checker(flows, ivr or IvrConfig(), data, base_dir if ivr is not None else None)
    if ivr is not None:
        checker.check_transfers()
    checker.check_variables()
    checker.explore(_route_flows(data))
    checker.check_loops()
    checker.check_ways_out()
    checker.check_prompts()
    return checker.problems


def _route_flows(data: Mapping[Any, Any]) -> list[tuple[object, str]]:
    routes = data.get("routes")
    out: list[tuple[object, str]] = []
    if isinstance(routes, Mapping):
        for key, route in routes.items():
            flow = route.get("flow") if isinstance(route, Mapping) else None
            if isinstance(flow, str):
                out.append((key, flow))
    return out


def _node_path(flow: str, node: str, *rest: object) -> Path_:
    return ("flows", flow, "nodes", node, *rest)


class _Checker:
    def __init__(
        self,
        flows: dict[str, FlowConfig],
        ivr: IvrConfig,
        data: Mapping[Any, Any],
        base_dir: Path | None,
    ) -> None:
        self.flows = flows
        self.ivr = ivr
        self.data = data
        self.base_dir = base_dir
        self.problems: list[GraphProblem] = []
        self._reported: set[GraphProblem] = set()
        self._dumps: dict[tuple[str, str], dict[str, Any]] = {}
        self.states: set[_State] = set()
        self.edges: dict[_State, list[_Edge]] = {}
        self.truncated: set[_State] = set()

    def add(self, path: Path_, message: str) -> None:
        if (path, message) not in self._reported:
            self._reported.add((path, message))
            self.problems.append((path, message))

    def nodes(self) -> Iterator[tuple[str, str, Node]]:
        for flow_name, flow in self.flows.items():
            for node_id, node in flow.nodes.items():
                yield flow_name, node_id, node

    def _dump(self, flow: str, node_id: str) -> dict[str, Any]:
        key = (flow, node_id)
        if key not in self._dumps:
            self._dumps[key] = self.flows[flow].nodes[node_id].model_dump()
        return self._dumps[key]

    # ------------------------------------------------------------------ transfers

    def check_transfers(self) -> None:
        allow = self.ivr.transfer_allow
        for flow, node_id, node in self.nodes():
            if not isinstance(node, TransferNode):
                continue
            if has_variables(node.to):
                if node.fallback is None:
                    self.add(
                        _node_path(flow, node_id),
                        f'`to: "{node.to}"` is only known while the call runs, and a number '
                        "not in ivr.transfer_allow is then refused: give a `fallback:` node",
                    )
            elif not matches_any(allow, node.to):
                listed = ", ".join(allow) if allow else "nothing is listed"
                self.add(
                    _node_path(flow, node_id, "to"),
                    f'transfer to "{node.to}" is not allowed: add it to ivr.transfer_allow '
                    f"({listed})",
                )

    # ------------------------------------------------------------------ variables

    def check_variables(self) -> None:
        assigned: set[str] = set(BUILTIN_VARIABLES)
        for flow, node_id, node in self.nodes():
            for path, name in _assignments(node):
                full = _node_path(flow, node_id, *path)
                if name in BUILTIN_VARIABLES:
                    hint = "use a language node" if name == "language" else "choose another name"
                    self.add(full, f'"{name}" is set from the call itself: {hint}')
                assigned.add(name)
        for flow, node_id, node in self.nodes():
            for path, name in _uses(node):
                if name not in assigned:
                    self.add(
                        _node_path(flow, node_id, *path),
                        f'variable "{name}" is never set by a set, collect, lookup or callback '
                        f"node{did_you_mean(name, assigned)} (built in: "
                        f"{', '.join(BUILTIN_VARIABLES)})",
                    )

    # ------------------------------------------------------------------ the expanded graph

    def explore(self, routes: list[tuple[object, str]]) -> None:
        """Expand every state reachable from the routes, then from every flow not reached."""
        language = self.ivr.default_language
        todo: deque[_State] = deque()
        route_flows = [flow for _key, flow in routes if flow in self.flows]
        for flow in dict.fromkeys(route_flows):
            self._enqueue(_State((), flow, self.flows[flow].start, language), todo)
        self._drain(todo, top_level=set(route_flows))
        reached = {s.flow for s in self.states}
        for flow in self.flows:
            if flow not in reached:
                start = _State((_UNKNOWN_CALLER,), flow, self.flows[flow].start, language)
                self._enqueue(start, todo)
                self._drain(todo, top_level=set())

    def _enqueue(self, state: _State, todo: deque[_State]) -> None:
        if state.node in self.flows[state.flow].nodes and state not in self.states:
            self.states.add(state)
            todo.append(state)

    def _drain(self, todo: deque[_State], *, top_level: set[str]) -> None:
        while todo:
            state = todo.popleft()
            if len(self.states) > MAX_STATES:
                self.truncated.add(state)
                continue
            edges = list(self._successors(state, top_level))
            self.edges[state] = edges
            for edge in edges:
                self._enqueue(edge.target, todo)

    def _successors(self, state: _State, top_level: set[str]) -> Iterator[_Edge]:
        flow = self.flows[state.flow]
        node = flow.nodes[state.node]
        kind = node.kind
        language = node.language if isinstance(node, LanguageNode) else state.language
        consuming = INPUT_EDGES.get(kind, frozenset())
        for path, target in node_edges(self._dump(state.flow, state.node)):
            if isinstance(target, str) and target in flow.nodes:
                yield _Edge(_State(state.stack, state.flow, target, language), path[0] in consuming)
        if isinstance(node, SubflowNode) and node.flow in self.flows:
            if len(state.stack) >= MAX_SUBFLOW_DEPTH:
                self.truncated.add(state)
                chain = " -> ".join([f for f, _n in state.stack if f] + [state.flow, node.flow])
                self.add(
                    _node_path(state.flow, state.node, "flow"),
                    f"subflows nest more than {MAX_SUBFLOW_DEPTH} deep ({chain}): a subflow "
                    "that runs itself again never returns",
                )
                return
            sub = self.flows[node.flow]
            yield _Edge(
                _State(
                    (*state.stack, (state.flow, state.node)), node.flow, sub.start, state.language
                ),
                False,
            )
        elif isinstance(node, GotoNode) and node.flow is not None and node.flow in self.flows:
            other = self.flows[node.flow]
            target = node.node if node.node is not None else other.start
            yield _Edge(_State(state.stack, node.flow, target, state.language), False)
        elif isinstance(node, ReturnNode):
            if not state.stack:
                if state.flow in top_level:
                    self.add(
                        _node_path(state.flow, state.node),
                        f'`return` outside a subflow: a route runs flow "{state.flow}" '
                        "directly, so there is nothing to return to (use hangup, or run the "
                        "flow with a subflow node)",
                    )
                return
            caller_flow, caller_node = state.stack[-1]
            if (caller_flow, caller_node) == _UNKNOWN_CALLER:
                return
            caller = self.flows[caller_flow].nodes[caller_node]
            if isinstance(caller, SubflowNode) and caller.next in self.flows[caller_flow].nodes:
                yield _Edge(
                    _State(state.stack[:-1], caller_flow, caller.next, state.language), False
                )

    def _is_exit(self, state: _State) -> bool:
        node = self.flows[state.flow].nodes[state.node]
        if node.kind in EXIT_KINDS or state in self.truncated:
            return True
        return (
            isinstance(node, ReturnNode)
            and bool(state.stack)
            and state.stack[-1] == _UNKNOWN_CALLER
        )

    # ------------------------------------------------------------------ loops and ways out

    def check_loops(self) -> None:
        """Report every cycle of edges taken without caller input, once per set of nodes."""
        silent = {
            s: [e.target for e in self.edges.get(s, []) if not e.consumes_input]
            for s in self.states
        }
        seen: set[frozenset[tuple[str, str]]] = set()
        for component in _strong_components(silent):
            if len(component) == 1:
                (only,) = component
                if only not in silent.get(only, []):
                    continue
            nodes = frozenset((s.flow, s.node) for s in component)
            if nodes in seen:
                continue
            seen.add(nodes)
            first = min(component, key=lambda s: self._order(s.flow, s.node))
            cycle = _cycle_through(first, silent, component)
            shown = " -> ".join(
                s.node if s.flow == first.flow else f"{s.flow}:{s.node}" for s in cycle
            )
            self.add(
                _node_path(first.flow, first.node),
                f"these nodes loop without waiting for the caller ({shown}): a caller who "
                "presses nothing would go round forever; end the loop in a hangup, queue or "
                "voicemail, or send it through a menu choice",
            )

    def check_ways_out(self) -> None:
        """Every menu/collect/callback can reach a queue, transfer, voicemail or hang-up."""
        reverse: dict[_State, list[_State]] = {}
        for state, edges in self.edges.items():
            for edge in edges:
                reverse.setdefault(edge.target, []).append(state)
        good = {s for s in self.states if self._is_exit(s)}
        todo = deque(good)
        while todo:
            for before in reverse.get(todo.popleft(), []):
                if before not in good:
                    good.add(before)
                    todo.append(before)
        for state in sorted(self.states - good, key=lambda s: self._order(s.flow, s.node)):
            node = self.flows[state.flow].nodes[state.node]
            if node.kind in INPUT_KINDS:
                self.add(
                    _node_path(state.flow, state.node),
                    f"{node.kind} without a way out: none of its choices nor its default ever "
                    "reaches a queue, transfer, voicemail or hang-up",
                )

    def _order(self, flow: str, node: str) -> tuple[int, int]:
        flows = list(self.flows)
        return flows.index(flow), list(self.flows[flow].nodes).index(node)

    # ------------------------------------------------------------------ prompt files

    def check_prompts(self) -> None:
        folder_text = self.ivr.prompt_folder
        if folder_text is None or self.base_dir is None:
            return
        folder = Path(folder_text).expanduser()
        if not folder.is_absolute():
            folder = self.base_dir / folder
        if not folder.is_dir():
            self.add(("ivr", "prompt_folder"), f"folder {folder} does not exist")
            return
        languages: dict[tuple[str, str], set[str]] = {}
        for state in self.states:
            languages.setdefault((state.flow, state.node), set()).add(state.language)
        finder = _SoundFinder(folder)
        queues = self.data.get("queues")
        for flow, node_id, node in self.nodes():
            langs = languages.get((flow, node_id), {self.ivr.default_language})
            prompts = [(_node_path(flow, node_id, *p), name) for p, name in _prompts(node)]
            if isinstance(node, QueueNode) and isinstance(queues, Mapping):
                qcfg = queues.get(node.queue)
                if isinstance(qcfg, Mapping):
                    for key in ("announce", "timeout_prompt"):
                        name = qcfg.get(key, "queue-timeout" if key == "timeout_prompt" else None)
                        if isinstance(name, str):
                            prompts.append((("queues", node.queue, key), name))
            for path, name in prompts:
                self._find_prompt(finder, folder, path, name, langs)
        campaigns = self.data.get("campaigns")
        if isinstance(campaigns, Mapping):
            # What a campaign plays to the people it calls: the default language.
            for campaign_id, campaign in campaigns.items():
                if not isinstance(campaign, Mapping):
                    continue
                for key in ("drop_prompt", "machine_prompt", "agent_announce"):
                    name = campaign.get(key)
                    if isinstance(name, str) and "${" not in name:
                        path = ("campaigns", campaign_id, key)
                        self._find_prompt(finder, folder, path, name, {self.ivr.default_language})
        if isinstance(queues, Mapping):
            # Agents hear their announcement in the default language (their phone's leg).
            for queue_name, qcfg in queues.items():
                name = qcfg.get("agent_announce") if isinstance(qcfg, Mapping) else None
                # One filled from call variables names many files: none to look for.
                if isinstance(name, str) and "${" not in name:
                    path = ("queues", queue_name, "agent_announce")
                    self._find_prompt(finder, folder, path, name, {self.ivr.default_language})
                told = qcfg.get("report_holdtime") if isinstance(qcfg, Mapping) else None
                if told is not None:
                    # The wait told to the agent: "hold time", the number, the unit.
                    path = ("queues", queue_name, "report_holdtime")
                    for prompt in (REPORT_HOLD_PROMPT, "queue-minutes", "queue-seconds"):
                        self._find_prompt(finder, folder, path, prompt, {self.ivr.default_language})

    def _find_prompt(
        self, finder: _SoundFinder, folder: Path, path: Path_, name: str, langs: set[str]
    ) -> None:
        missing = sorted(lang for lang in langs if not finder.exists(name, lang))
        if missing:
            looked = ", ".join(f"{lang}/{name}.*" for lang in missing)
            self.add(
                path,
                f'prompt "{name}" has no sound file in {folder} (looked for {looked} and {name}.*)',
            )


class _SoundFinder:
    """Looks up ``<folder>/<lang>/<prompt>.<ext>`` or ``<folder>/<prompt>.<ext>`` (cached)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._listings: dict[Path, frozenset[str]] = {}

    def _stems(self, directory: Path) -> frozenset[str]:
        if directory not in self._listings:
            try:
                names = os.listdir(directory)
            except OSError:
                names = []
            self._listings[directory] = frozenset(n.split(".", 1)[0] for n in names if "." in n)
        return self._listings[directory]

    def exists(self, prompt: str, language: str) -> bool:
        for base in (self.folder / language, self.folder):
            target = base / prompt
            if target.name in self._stems(target.parent):
                return True
        return False


# --------------------------------------------------------------------------- node facts


def _prompts(node: Node) -> list[tuple[Path_, str]]:
    """(path inside the node, sound file) for every prompt the node can play."""
    out: list[tuple[Path_, str]] = []
    if isinstance(node, PlayNode):
        out += [(("prompts", i), item.file) for i, item in enumerate(node.prompts) if item.file]
    elif isinstance(node, MenuNode | CollectNode):
        out += [(("prompt",), node.prompt), (("invalid_prompt",), node.invalid_prompt)]
        out.append((("timeout_prompt",), node.timeout_prompt))
        if isinstance(node, CollectNode) and node.confirm is not None:
            out += [(("confirm", "prompt"), node.confirm.prompt)]
            out += [(("confirm", "question"), node.confirm.question)]
    elif isinstance(node, CallbackNode):
        for key in ("prompt", "confirm_prompt", "enter_prompt", "invalid_prompt"):
            out.append(((key,), str(getattr(node, key))))
    elif isinstance(node, TransferNode | VoicemailNode | HangupNode) and node.prompt:
        out.append((("prompt",), node.prompt))
    return out


def _assignments(node: Node) -> list[tuple[Path_, str]]:
    """(path inside the node, variable) for every variable the node sets."""
    if isinstance(node, SetNode):
        return [(("variables", name), name) for name in node.variables]
    if isinstance(node, CollectNode | CallbackNode):
        return [(("variable",), node.variable)]
    if isinstance(node, LookupNode):
        return [(("fields", name), name) for name in node.fields]
    if isinstance(node, QueueFiguresNode):
        return [(("into",), f"{node.into}_{name}") for name in QUEUE_FIGURES]
    return []


def _uses(node: Node) -> list[tuple[Path_, str]]:
    """(path inside the node, variable) for every variable the node reads."""
    texts: list[tuple[Path_, str]] = []
    names: list[tuple[Path_, str]] = []
    if isinstance(node, PlayNode):
        texts += [(("prompts", i), item.value) for i, item in enumerate(node.prompts) if item.value]
    elif isinstance(node, BranchNode):
        for i, case in enumerate(node.cases):
            if case.variable is not None:
                names.append((("cases", i, "variable"), case.variable))
            if case.equals is not None:
                texts.append((("cases", i, "equals"), case.equals))
            texts += [(("cases", i, "one_of", j), v) for j, v in enumerate(case.one_of or [])]
    elif isinstance(node, SetNode):
        texts += [(("variables", k), v) for k, v in node.variables.items()]
    elif isinstance(node, LookupNode):
        texts.append((("url",), node.url))
        texts += [(("body", k), v) for k, v in (node.body or {}).items()]
        texts += [(("headers", k), v) for k, v in node.headers.items()]
    elif isinstance(node, QueueNode):
        texts += [(("skills", i), v) for i, v in enumerate(node.skills)]
        if node.priority_from is not None:
            names.append((("priority_from",), node.priority_from))
        if node.agent_from is not None:
            names.append((("agent_from",), node.agent_from))
        if node.queue_from is not None:
            names.append((("queue_from",), node.queue_from))
        if node.head_start_from is not None:
            names.append((("head_start_from",), node.head_start_from))
    elif isinstance(node, TransferNode):
        texts.append((("to",), node.to))
    for path, text in texts:
        names += [(path, name) for name in names_in(text)]
    return names


# --------------------------------------------------------------------------- graph helpers


def _strong_components(graph: Mapping[_State, list[_State]]) -> list[set[_State]]:
    """Tarjan's strongly connected components, iteratively (configs can be deep)."""
    index: dict[_State, int] = {}
    low: dict[_State, int] = {}
    on_stack: set[_State] = set()
    stack: list[_State] = []
    out: list[set[_State]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[_State, int]] = [(root, 0)]
        while work:
            node, child_i = work.pop()
            if child_i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = graph.get(node, [])
            if child_i < len(children):
                work.append((node, child_i + 1))
                child = children[child_i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                component: set[_State] = set()
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.add(top)
                    if top == node:
                        break
                out.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


def _cycle_through(
    start: _State, graph: Mapping[_State, list[_State]], within: set[_State]
) -> list[_State]:
    """A shortest cycle from ``start`` back to it, inside ``within`` (start listed twice)."""
    parents: dict[_State, _State] = {}
    todo = deque([start])
    while todo:
        node = todo.popleft()
        for child in graph.get(node, []):
            if child not in within:
                continue
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            if child not in parents:
                parents[child] = node
                todo.append(child)
    return [start, start]
