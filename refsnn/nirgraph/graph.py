"""`NIRNetwork`: a refsnn Module that executes a NIR graph, and the graph
analysis it needs (back edges, topological order).

Execution (docs/nir.md, "Graph execution"):
- A node's input is the sum of the values on its incoming edges, in the
  order the edges are listed in the graph.
- Back edges: a depth-first walk from the Input nodes (nodes and edges in
  graph order) marks every edge that closes a cycle. A back edge carries its
  source's value of the previous time step: a one-step delay. Before the
  first step it carries the source's value in a silent step -1 (zero inputs,
  every stateful node outputs zeros, stateless nodes evaluated on that: an
  Affine on the back edge gives its bias, as in snnTorch's RLeaky). The
  other edges form a DAG, run in topological order.
- Step mode 'm' (`x_seq: [T, N, *]`): an acyclic graph runs layer by layer
  (each node over the whole sequence: stateless nodes fold T into the batch,
  stateful ones loop over T); a graph with back edges runs step by step.
  Both give identical values and input gradients on an acyclic graph; weight
  gradients differ by summation order only (one GEMM over T*N rows against T
  accumulated per-step ones).
- Step mode 's' (`x: [N, *]`): one step per call, state (and back-edge
  values) kept until `functional.reset_net`.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..autograd import Tensor, as_tensor, stack
from ..containers import StepModule
from ..functional import seq_to_ann_forward
from ..module import MemoryModule, Module

__all__ = ["GraphPlan", "NIRNetwork"]


class GraphPlan:
    """Topology of a NIR graph: `keys` (graph order), `edges`, `inputs` and
    `outputs` (keys of Input/Output nodes), `back_edges` (a set), `order` (a
    topological order of the DAG left without back edges) and `incoming[key]`
    (source keys of forward edges, in edge order)."""

    def __init__(self, keys, edges, inputs, outputs):
        self.keys, self.edges = list(keys), [tuple(e) for e in edges]
        self.inputs, self.outputs = list(inputs), list(outputs)
        successors = OrderedDict((k, []) for k in self.keys)
        for a, b in self.edges:
            successors[a].append(b)
        self.back_edges = _back_edges(self.inputs, successors)
        self.incoming = OrderedDict((k, []) for k in self.keys)
        self.feedback = OrderedDict((k, []) for k in self.keys)
        for a, b in self.edges:
            (self.feedback if (a, b) in self.back_edges else self.incoming)[b].append(a)
        self.order = _topological_order(self.keys, self.incoming)
        reached = _reachable(self.inputs, successors)
        self.unreachable = [k for k in self.keys if k not in reached]


def _back_edges(inputs, successors) -> set:
    """Edges that close a cycle in a depth-first walk from `inputs`."""
    state, back = {}, set()          # state: 1 on the stack, 2 done
    for root in inputs:
        if root in state:
            continue
        stack_ = [(root, iter(successors[root]))]
        state[root] = 1
        while stack_:
            node, it = stack_[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack_.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack_.append((nxt, iter(successors[nxt])))
    return back


def _topological_order(keys, incoming) -> list:
    """Kahn's algorithm, ties broken by graph order."""
    done, order = set(), []
    while len(order) < len(keys):
        ready = [k for k in keys if k not in done and all(p in done for p in incoming[k])]
        if not ready:        # a cycle not reachable from the inputs
            ready = [k for k in keys if k not in done][:1]
        order.append(ready[0])
        done.add(ready[0])
    return order


def _reachable(inputs, successors) -> set:
    seen, todo = set(inputs), list(inputs)
    while todo:
        for b in successors[todo.pop()]:
            if b not in seen:
                seen.add(b)
                todo.append(b)
    return seen


def _module_name(key: str, taken: set) -> str:
    """A child-module name for node `key` (no dots, unique)."""
    name = str(key).replace(".", "_") or "node"
    base, i = name, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


class _Nodes(Module):
    """Holds the node modules; `state_dict` keys are `nodes.<name>.<param>`."""


class NIRNetwork(StepModule, MemoryModule):
    """Runs a NIR graph (built by `from_nir`).

    `forward(x)` with one Input node (or `forward(x_a, x_b, ...)` in Input-node
    order, or `forward({key: x})`): `x: [N, *shape]` ('s') or `[T, N, *shape]`
    ('m'). Returns the Output node's value, or a dict keyed by Output key when
    there are several. Attributes: `plan` (`GraphPlan`), `dt`, `node_types`
    (key -> NIR type name), `shapes` (key -> (input shape, output shape),
    without batch), `node_modules` (key -> module or None for Input/Output).
    """

    def __init__(self, plan: GraphPlan, node_modules: dict, node_types: dict, shapes: dict,
                 dt: float, step_mode: str = "m", metadata=None):
        super().__init__()
        self.plan, self.dt, self.node_types, self.shapes = plan, dt, node_types, shapes
        self.metadata = dict(metadata or {})
        self.nodes = _Nodes()
        self.node_names, taken = {}, set()
        for key in plan.keys:
            module = node_modules.get(key)
            if module is not None:
                name = _module_name(key, taken)
                self.node_names[key] = name
                self.nodes.add_module(name, module)
        self.register_memory("feedback", None)
        self.step_mode = step_mode

    @property
    def node_modules(self) -> dict:
        return {k: (getattr(self.nodes, self.node_names[k]) if k in self.node_names else None)
                for k in self.plan.keys}

    def detach(self) -> None:
        if self.feedback:
            for value in self.feedback.values():
                value.detach_()

    # --- calling ----------------------------------------------------------------
    def forward(self, *xs):
        inputs = self._named_inputs(xs)
        if self.step_mode == "s":
            return self._result(self._step(inputs))
        if not self.plan.back_edges:
            return self._result(self._layer_by_layer(inputs))
        T = next(iter(inputs.values())).shape[0]
        steps = [self._step({k: x[t] for k, x in inputs.items()}) for t in range(T)]
        return self._result({k: stack([s[k] for s in steps]) for k in self.plan.outputs})

    def _named_inputs(self, xs) -> dict:
        if len(xs) == 1 and isinstance(xs[0], dict):
            given = dict(xs[0])
        else:
            given = dict(zip(self.plan.inputs, xs))
            if len(xs) != len(self.plan.inputs):
                raise TypeError(f"NIRNetwork: the graph has {len(self.plan.inputs)} Input "
                                f"node(s) {self.plan.inputs}, got {len(xs)} input(s)")
        missing = [k for k in self.plan.inputs if k not in given]
        if missing:
            raise TypeError(f"NIRNetwork: no value given for Input node(s) {missing}")
        min_dims = 2 if self.step_mode == "s" else 3
        for key, x in given.items():
            given[key] = x = as_tensor(x)
            shape = tuple(self.shapes[key][1])
            lead = min_dims - 1
            if x.ndim != lead + len(shape) or tuple(x.shape[lead:]) != shape:
                layout = "[N, *shape]" if self.step_mode == "s" else "[T, N, *shape]"
                raise ValueError(f"NIRNetwork: Input node {key!r} takes {layout} with shape "
                                 f"{shape} in step_mode {self.step_mode!r}, got "
                                 f"{tuple(x.shape)}")
        return given

    def _result(self, values: dict):
        if len(self.plan.outputs) == 1:
            return values[self.plan.outputs[0]]
        return {k: values[k] for k in self.plan.outputs}

    def _summed_input(self, key, values, extra=()):
        parts = [values[a] for a in self.plan.incoming[key]] + [e for e in extra
                                                               if e is not None]
        if not parts:
            return None
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        return total

    def _layer_by_layer(self, inputs: dict) -> dict:
        values = {}
        for key in self.plan.order:
            x = inputs[key] if key in inputs else self._summed_input(key, values)
            module = self.node_modules[key]
            if module is None:
                values[key] = x
            elif isinstance(module, StepModule):
                values[key] = module.multi_step_forward(x)
            else:
                values[key] = seq_to_ann_forward(x, module)
        return values

    def _silent_step(self, batch: Tensor) -> dict:
        """The back-edge values before the first step: the graph at step -1,
        with zero inputs and every stateful node outputting zeros, its
        stateless nodes evaluated on that (an Affine on a recurrent edge gives
        its bias, as snnTorch's RLeaky does)."""
        values = {}
        for key in self.plan.order:
            module = self.node_modules[key]
            x = self._summed_input(key, values)
            if x is None or key in self.plan.inputs or isinstance(module, StepModule):
                shape = self.shapes[key][1]
                values[key] = Tensor(np.zeros((batch.shape[0],) + tuple(shape), batch.dtype))
            else:
                values[key] = x if module is None else module(x)
        return {a: values[a] for a, _ in self.plan.back_edges}

    def _step(self, inputs: dict) -> dict:
        """One time step: inputs `[N, *]` -> every node's value `[N, *]`."""
        values, batch = {}, next(iter(inputs.values()))
        feedback = self.feedback
        if feedback is None and self.plan.back_edges:
            feedback = self._silent_step(batch)
        feedback = feedback or {}
        for key in self.plan.order:
            if key in inputs:
                x = inputs[key]
            else:
                x = self._summed_input(key, values,
                                       [feedback.get(a) for a in self.plan.feedback[key]])
            module = self.node_modules[key]
            if module is None:
                values[key] = x
            elif isinstance(module, StepModule):
                values[key] = module.single_step_forward(x)
            else:
                values[key] = module(x)
        if self.plan.back_edges:
            self.feedback = {a: values[a] for a, _ in self.plan.back_edges}
        return values

    def extra_repr(self) -> str:
        return (f"dt={self.dt}, inputs={self.plan.inputs}, outputs={self.plan.outputs}, "
                f"back_edges={sorted(self.plan.back_edges)}, step_mode={self.step_mode}")
