"""`Module`, `Parameter` and SpikingJelly's `MemoryModule`.

Parameter and buffer names, their order in `state_dict()`, strictness of
`load_state_dict()` and `__repr__` follow PyTorch, so weights move between
refsnn and PyTorch without renaming.
"""
from __future__ import annotations

import copy
from collections import OrderedDict, namedtuple

import numpy as np

from .autograd import Tensor, _as_array

__all__ = ["Parameter", "Module", "MemoryModule", "IncompatibleKeys"]

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A leaf Tensor that a Module registers as a learnable parameter."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data.data if isinstance(data, Tensor) else data,
                         requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer, container and neuron."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # --- registration -----------------------------------------------------------
    def register_parameter(self, name: str, param) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign {type(param).__name__} as parameter "
                            f"'{name}' (refsnn.module.Parameter or None required)")
        self._discard(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, value, persistent: bool = True) -> None:
        self._discard(name)
        if value is not None and not isinstance(value, Tensor):
            value = Tensor(_as_array(value))
        self._buffers[name] = value
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a refsnn Module")
        self._discard(name)
        self._modules[name] = module

    register_module = add_module

    def _discard(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        self._non_persistent_buffers.discard(name)
        self.__dict__.pop(name, None)

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self.add_module(name, value)
        elif name in self._parameters:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to parameter "
                                f"'{name}' (Parameter or None required)")
            self._parameters[name] = None
        elif name in self._buffers:
            self._buffers[name] = value if value is None or isinstance(value, Tensor) \
                else Tensor(_as_array(value))
        elif name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to child "
                                f"module '{name}' (Module or None required)")
            self._modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    # --- calling ----------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # --- traversal ----------------------------------------------------------------
    def named_modules(self, memo=None, prefix: str = ""):
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def _named_members(self, store: str, prefix: str, recurse: bool):
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, store).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # --- modes and dtype ------------------------------------------------------------
    def train(self, mode: bool = True):
        """Set training mode here and, through their own `train`, in every child."""
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be boolean, got {mode!r}")
        object.__setattr__(self, "training", mode)
        for child in self.children():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, flag: bool = True):
        for p in self.parameters():
            p.requires_grad = flag
        return self

    def apply(self, fn):
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def _apply(self, fn) -> "Module":
        """Replace the array of every parameter and buffer by `fn(array)`; the
        Tensor objects keep their identity (optimizers keep working)."""
        for m in self.modules():
            for store in (m._parameters, m._buffers):
                for t in store.values():
                    if t is not None:
                        t.data = fn(t.data)
                        if t.grad is not None:
                            t.grad.data = fn(t.grad.data)
            m._apply_extra(fn)
        return self

    def _apply_extra(self, fn) -> None:
        """Hook for subclasses holding other tensors (memories)."""

    def to(self, dtype):
        dtype = np.dtype(dtype)
        return self._apply(lambda a: a.astype(dtype) if a.dtype.kind == "f" else a)

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    # --- state dict ---------------------------------------------------------------
    def _state_items(self, prefix: str = ""):
        """(key, tensor) pairs in PyTorch's state_dict order."""
        for name, p in self._parameters.items():
            if p is not None:
                yield prefix + name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                yield prefix + name, b
        for name, child in self._modules.items():
            if child is not None:
                yield from child._state_items(f"{prefix}{name}.")

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of parameters and persistent buffers under PyTorch's keys."""
        return OrderedDict((k, np.array(t.data, copy=True)) for k, t in self._state_items())

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values into this module's tensors, keeping their dtypes.

        Every key and shape is checked before anything is written, so a failing
        load changes nothing. `strict=True` raises one error listing all missing
        and unexpected keys and all shape mismatches; `strict=False` skips the
        unknown and missing keys and returns them (shape mismatches still raise).
        """
        own = OrderedDict(self._state_items())
        incoming = OrderedDict()
        for key, value in state_dict.items():
            try:
                incoming[key] = _as_array(value) if not isinstance(value, (int, float)) \
                    else np.asarray(value)
            except Exception as e:  # noqa: BLE001 - report which key failed
                raise TypeError(f"load_state_dict: value of '{key}' cannot be "
                                f"converted to an array: {e}") from None
        metadata = getattr(state_dict, "_metadata", None) or {}   # PyTorch's, per module
        for name, module in self.named_modules():
            version = metadata.get(name, {}).get("version")
            for key, value in module._older_state_defaults(name and name + ".", version).items():
                incoming.setdefault(key, value)
        missing = [k for k in own if k not in incoming]
        unexpected = self._unexpected_keys(incoming, own)
        mismatched = [f"{k}: checkpoint {incoming[k].shape} vs model {own[k].shape}"
                      for k in own if k in incoming and incoming[k].shape != own[k].shape]
        problems = []
        if strict and missing:
            problems.append("Missing key(s): " + ", ".join(missing))
        if strict and unexpected:
            problems.append("Unexpected key(s): " + ", ".join(unexpected))
        if mismatched:
            problems.append("Size mismatch: " + "; ".join(mismatched))
        if problems:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n  "
                               + "\n  ".join(problems))
        for key, t in own.items():
            if key in incoming:
                t.data = np.array(incoming[key], dtype=t.data.dtype, copy=True)
        return IncompatibleKeys(missing, unexpected)

    def _older_state_defaults(self, prefix: str, version) -> dict:
        """{key: value} for keys that a state dict of an older version of this
        module may lack (`version`: the module's version in PyTorch's
        `_metadata` of the state dict, None without metadata); none here."""
        return {}

    def _unexpected_keys(self, incoming, own) -> list:
        """Keys of `incoming` this module does not hold, in PyTorch's order:
        each key is reported by the deepest module its dotted path reaches
        (modules in pre-order), keys of one module in `incoming`'s order."""
        found = []

        def visit(module, prefix):
            for key in incoming:
                if key in own or not key.startswith(prefix):
                    continue
                head, dot, _ = key[len(prefix):].partition(".")
                if not (dot and head in module._modules):
                    found.append(key)
            for name, child in module._modules.items():
                if child is not None:
                    visit(child, f"{prefix}{name}.")

        visit(self, "")
        return found

    # --- repr -------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        children = [f"({name}): " + repr(m).replace("\n", "\n  ")
                    for name, m in self._modules.items()]
        extra = self.extra_repr()
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = ([extra] if extra else []) + children
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))


class MemoryModule(Module):
    """SpikingJelly's stateful module: named memories that `reset()` restores.

    Memories are not parameters or buffers, so they never enter `state_dict()`.
    """

    def __init__(self):
        super().__init__()
        object.__setattr__(self, "_memories", OrderedDict())
        object.__setattr__(self, "_memories_rv", OrderedDict())

    def register_memory(self, name: str, value) -> None:
        """Register memory `name` whose initial (reset) value is `value`."""
        assert not hasattr(self, name), f"{name} has been set as a member variable!"
        self._memories[name] = value
        self._memories_rv[name] = copy.deepcopy(value)

    def reset(self) -> None:
        """Restore every memory to a copy of its initial value."""
        for name, value in self._memories_rv.items():
            self._memories[name] = copy.deepcopy(value)

    def detach(self) -> None:
        """Cut the graph behind every Tensor memory (SpikingJelly's `detach_`)."""
        for value in self._memories.values():
            if isinstance(value, Tensor):
                value.detach_()

    def named_memories(self):
        yield from self._memories.items()

    def memories(self):
        yield from self._memories.values()

    def __setattr__(self, name, value):
        memories = self.__dict__.get("_memories")
        if memories is not None and name in memories:
            memories[name] = value
        else:
            super().__setattr__(name, value)

    def __getattr__(self, name):
        memories = self.__dict__.get("_memories")
        if memories is not None and name in memories:
            return memories[name]
        return super().__getattr__(name)

    def __delattr__(self, name):
        if name in self._memories:
            del self._memories[name]
            del self._memories_rv[name]
        else:
            super().__delattr__(name)

    def _apply_extra(self, fn) -> None:
        for name, value in self._memories.items():
            if isinstance(value, Tensor):
                self._memories[name] = Tensor._wrap(fn(value.data))
