"""OpenCL C emitter for the formulas of `refsnn.mathops`.

A formula (a surrogate derivative, a neuron's charge) is a Python function over
operands and an `ops` namespace. Run on `CEmitter`, it does not compute: every
operation appends one statement `V tN = (...);` to the emitter, fully
parenthesised, in the order the formula evaluates it, and returns a `CExpr`
naming the temporary. `CEmitter.finish` fixes the results and
`CEmitter.function` renders the statements as one OpenCL C function. The
formula's text is never copied into a `.cl` file.

Constants, rounded once to the kernel's `real` type (PyTorch's N2/N3 rule):
- a Python float becomes the literal `(real)(<repr of the double>)`;
- a `Param` (a parameter such as `tau` or `alpha`, which the backend passes
  instead of a float so that one program serves every value) becomes a slot
  `P.sN` of a `real16` kernel argument; Python arithmetic on `Param`s (`1. -
  1./tau`, `math.pi / 2 * alpha`) is folded in double on the host, exactly as
  Python folds floats, and the folded double is rounded to `real` when the
  slot values are sent (`CEmitter.slot_values`).

`V` (the working type: `real`, or a vector `realW` for the chunked CPU layout)
is filled in when the function is rendered, so one formula gives both forms.
Masks (`ge`, `heaviside`, ...) use OpenCL's `?:`, which selects per component
for vectors.
"""
from __future__ import annotations

import math

import numpy as np

from ..mathops import Ops

__all__ = ["Param", "CExpr", "CEmitter", "literal", "V"]

V = "$V"  # placeholder for the working type, filled in by `CEmitter.function`
MAX_SLOTS = 16


class Param:
    """A host-side parameter value (double). Arithmetic with floats and other
    `Param`s folds in double and stays a `Param`; meeting a `CExpr` turns it
    into a kernel constant slot."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = float(value)

    @staticmethod
    def _v(other):
        if isinstance(other, Param):
            return other.value
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            return float(other)
        return None

    def _fold(self, other, fn):
        o = self._v(other)
        return NotImplemented if o is None else Param(fn(self.value, o))

    def __add__(self, o): return self._fold(o, lambda a, b: a + b)
    def __radd__(self, o): return self._fold(o, lambda a, b: b + a)
    def __sub__(self, o): return self._fold(o, lambda a, b: a - b)
    def __rsub__(self, o): return self._fold(o, lambda a, b: b - a)
    def __mul__(self, o): return self._fold(o, lambda a, b: a * b)
    def __rmul__(self, o): return self._fold(o, lambda a, b: b * a)
    def __truediv__(self, o): return self._fold(o, lambda a, b: a / b)
    def __rtruediv__(self, o): return self._fold(o, lambda a, b: b / a)
    def __pow__(self, o): return self._fold(o, lambda a, b: a ** b)
    def __rpow__(self, o): return self._fold(o, lambda a, b: b ** a)
    def __neg__(self): return Param(-self.value)
    def __pos__(self): return self
    def __abs__(self): return Param(abs(self.value))
    def __float__(self): return self.value
    def __bool__(self): return self.value != 0.0
    def __hash__(self): return hash(self.value)
    def __eq__(self, o): return self.value == self._v(o)
    def __ne__(self, o): return self.value != self._v(o)
    def __lt__(self, o): return self.value < self._v(o)
    def __le__(self, o): return self.value <= self._v(o)
    def __gt__(self, o): return self.value > self._v(o)
    def __ge__(self, o): return self.value >= self._v(o)
    def __repr__(self): return f"Param({self.value!r})"


def _number(c: float) -> str:
    """The C spelling of the double c (its repr; INFINITY / NAN otherwise)."""
    c = float(c)
    if math.isnan(c):
        return "NAN"
    if math.isinf(c):
        return "INFINITY" if c > 0 else "-INFINITY"
    return repr(c)


def literal(c: float) -> str:
    """`(real)(<repr of the double>)`: C rounds the double once to `real`."""
    return f"(real)({_number(c)})"


class CExpr:
    """An operand inside a formula being emitted: the C name of a value of
    working type `V`. Supports `+ - * /` and unary `-` with other `CExpr`s,
    Python floats and `Param`s."""

    __slots__ = ("code", "em")

    def __init__(self, code: str, em: "CEmitter"):
        self.code, self.em = code, em

    def _bin(self, other, op, reflected=False):
        if not isinstance(other, (CExpr, Param, int, float)) or isinstance(other, bool):
            return NotImplemented
        a, b = self.code, self.em.operand(other)
        return self.em.temp(f"({b} {op} {a})" if reflected else f"({a} {op} {b})")

    def __add__(self, o): return self._bin(o, "+")
    def __radd__(self, o): return self._bin(o, "+", True)
    def __sub__(self, o): return self._bin(o, "-")
    def __rsub__(self, o): return self._bin(o, "-", True)
    def __mul__(self, o): return self._bin(o, "*")
    def __rmul__(self, o): return self._bin(o, "*", True)
    def __truediv__(self, o): return self._bin(o, "/")
    def __rtruediv__(self, o): return self._bin(o, "/", True)
    def __neg__(self): return self.em.temp(f"(-{self.code})")

    def __repr__(self):
        return f"CExpr({self.code})"


class CEmitter(Ops):
    """The `Ops` namespace that writes OpenCL C (see the module docstring).

    slots: how the function reads the `real16` holding this emitter's `Param`
    values (`P` gives `P.s0`, `P.s1`, ...; `(*P)` reads through a pointer).
    """

    def __init__(self, slots: str = "P"):
        self.slots = slots
        self.lines: list = []
        self._slot_values: list = []

    # -- operands -------------------------------------------------------------
    def input(self, name: str) -> CExpr:
        """A function argument (or other C value in scope) named `name`."""
        return CExpr(name, self)

    def operand(self, value) -> str:
        if isinstance(value, CExpr):
            if value.em is not self:
                raise ValueError("a CExpr from another emitter was mixed into this formula")
            return value.code
        if isinstance(value, Param):
            return self._slot(value.value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return literal(value)
        raise TypeError(f"cannot use {type(value).__name__} {value!r} in an OpenCL formula "
                        "(expected a CExpr, a Python float or a Param)")

    def _slot(self, value: float) -> str:
        if len(self._slot_values) == MAX_SLOTS:
            raise ValueError(f"formula needs more than {MAX_SLOTS} parameter slots")
        self._slot_values.append(value)
        return f"{self.slots}.s{len(self._slot_values) - 1:x}"

    def temp(self, code: str) -> CExpr:
        name = f"t{len(self.lines)}"
        self.lines.append((name, code))
        return CExpr(name, self)

    def _cast(self, value) -> str:
        """`value` as the working type (a float literal is rounded once)."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"({V})({_number(value)})"
        return f"({V})({self.operand(value)})"

    def _call(self, fn: str, a) -> CExpr:
        return self.temp(f"{fn}({self.operand(a)})")

    # -- the Ops protocol -------------------------------------------------------
    def exp(self, a): return self._call("exp", a)
    def log(self, a): return self._call("log", a)
    def sqrt(self, a): return self._call("sqrt", a)
    def abs(self, a): return self._call("fabs", a)
    def atan(self, a): return self._call("atan", a)
    def erfc(self, a): return self._call("erfc", a)
    def cos(self, a): return self._call("cos", a)
    def sin(self, a): return self._call("sin", a)
    def tanh(self, a): return self._call("tanh", a)

    def sign(self, a):
        # PyTorch's sign (0 for +-0 and NaN), written as NumPy's namespace does
        return self.gt(a, 0.0) - self.lt(a, 0.0)

    def sigmoid(self, a):
        return self.temp(f"({literal(1.0)} / ({literal(1.0)} + exp(-{self.operand(a)})))")

    def reciprocal(self, a):
        return self.temp(f"({literal(1.0)} / {self.operand(a)})")

    def square(self, a):
        x = self.operand(a)
        return self.temp(f"({x} * {x})")

    def pow(self, a, k):
        """PyTorch's CPU special cases (k = 2, 3, -1, -2, -0.5, 1, 0), chosen on
        the host by the double value of k (a `Param` too), else OpenCL `pow`."""
        x = self.operand(a)
        cases = {2.0: f"({x} * {x})", 3.0: f"(({x} * {x}) * {x})",
                 -1.0: f"({literal(1.0)} / {x})", -2.0: f"({literal(1.0)} / ({x} * {x}))",
                 -0.5: f"({literal(1.0)} / sqrt({x}))", 1.0: x, 0.0: self._cast(1.0)}
        special = cases.get(float(k))
        return self.temp(special if special is not None else f"pow({x}, ({V})({self.operand(k)}))")

    def _mask(self, op, a, b):
        return self.temp(f"(({self.operand(a)} {op} {self.operand(b)}) "
                         f"? {self._cast(1.0)} : {self._cast(0.0)})")

    def heaviside(self, a): return self._mask(">=", a, 0.0)
    def ge(self, a, b): return self._mask(">=", a, b)
    def gt(self, a, b): return self._mask(">", a, b)
    def le(self, a, b): return self._mask("<=", a, b)
    def lt(self, a, b): return self._mask("<", a, b)

    def where(self, cond, a, b):
        return self.temp(f"(({self.operand(cond)} != {self._cast(0.0)}) "
                         f"? {self._cast(a)} : {self._cast(b)})")

    def const(self, c, like):
        return self.temp(self._cast(c))

    # -- rendering ------------------------------------------------------------
    @property
    def param_values(self) -> list:
        """The doubles of the `Param` slots, in slot order."""
        return list(self._slot_values)

    def slot_values(self, dtype) -> np.ndarray:
        """The `Param` values, each rounded once from double to `dtype`, padded
        to the 16 lanes of the `real16` slot argument."""
        values = np.zeros(MAX_SLOTS, dtype=dtype)
        values[:len(self._slot_values)] = np.array(self._slot_values, dtype=np.float64).astype(dtype)
        return values

    def finish(self, result, outputs=()) -> "CEmitter":
        """Fix what the function returns (`result`) and stores (`outputs`:
        (pointer argument name, value) pairs); returns self."""
        self._returns = self._code(result)
        self._stores = [(pointer, self._code(value)) for pointer, value in outputs]
        return self

    def _code(self, value) -> str:
        return value.code if isinstance(value, CExpr) else f"({V})({self.operand(value)})"

    def body(self, vtype: str) -> str:
        """The statements with `V` as `vtype`, the stores, then the return."""
        lines = [f"    {V} {name} = {code};" for name, code in self.lines]
        lines += [f"    *{pointer} = {code};" for pointer, code in self._stores]
        lines.append(f"    return {self._returns};")
        return "\n".join(lines).replace(V, vtype)

    def function(self, name: str, vtype: str, args) -> str:
        """`static inline vtype name(args) { body }` (after `finish`). `args`
        are C parameter declarations (`V` in them is `vtype`) naming what the
        formula took via `input`."""
        params = ", ".join(a.replace(V, vtype) for a in args)
        return f"static inline {vtype} {name}({params})\n{{\n{self.body(vtype)}\n}}\n"
