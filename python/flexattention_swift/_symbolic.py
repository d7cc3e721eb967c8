"""The symbolic values a mod is traced with: tables, operators, the public functions, torch and NumPy hooks.

Operations on :class:`~flexattention_swift._expr.Expr` values record an expression instead of computing: Python's
operators, the torch functions they are given to (``__torch_function__``) and NumPy's ufuncs
(``__array_ufunc__``). Captured tensors and :func:`table` wrappers are read through :class:`Table`. ``_trace.py``
calls a mod with these values.
"""

import math
import threading

import numpy as np

from . import _expr as E
from ._dlpack import is_torch_tensor, torch_module
from ._expr import BOOL, FLOAT, INT, Expr
from .errors import TraceError

__all__ = ["table", "tanh", "exp", "log", "sqrt", "where", "minimum", "maximum", "abs", "clamp", "q_len", "kv_len"]

_state = threading.local()


def _context():
    return getattr(_state, "context", None)


# ---- tables -------------------------------------------------------------------------------------------------------


class table:
    """Marks a NumPy array (or torch tensor) captured by a mod as a table the mod reads: ``bias[h, q - kv]``.

    Captured NumPy arrays and torch tensors of 1 to 3 dimensions are tables already; ``table(x, name="bias")``
    chooses the table's name in the textual form. Int arrays make Int tables, float arrays Float tables (whose
    gradients the backward pass computes) and bool arrays tables read as Bools. Outside a trace, indexing a
    ``table`` indexes the array.
    """

    __slots__ = ("array", "name")

    def __init__(self, array, name=None):
        if name is not None and not E.is_identifier(name):
            raise TraceError(f"table name {name!r} is not an identifier of the mod language")
        if name is not None and name in E.RESERVED:
            raise TraceError(f"table name {name!r} is a reserved word of the mod language")
        if not is_torch_tensor(array):
            array = np.asarray(array)
        self.array = array
        self.name = name

    def __getitem__(self, index):
        return self.array[index]

    @property
    def shape(self):
        return tuple(self.array.shape)

    def __repr__(self):
        return f"table({self.array!r}, name={self.name!r})"


def _numpy_kind(dtype):
    if dtype == np.bool_:
        return BOOL
    if np.issubdtype(dtype, np.integer):
        return INT
    if np.issubdtype(dtype, np.floating):
        return FLOAT
    return None


def _torch_kind(tensor):
    torch = torch_module()
    if tensor.dtype == torch.bool:
        return BOOL
    if tensor.dtype.is_floating_point:
        return FLOAT
    if tensor.dtype.is_complex:
        return None
    return INT


class TableSource:
    """A table of a traced mod: its name, element kind, the values passed to the library and the original.

    ``values`` is the array or tensor given to the library (its dtype converted where the library has none:
    float64 to float32, small ints and bools to int32; a 0-d value viewed as shape [1]); ``original`` is what the
    mod captured. ``scalar`` is true for a 0-d original, which the text reads as ``name[0]``.
    """

    __slots__ = ("name", "kind", "values", "original", "scalar", "shape")

    def __init__(self, name, original):
        self.name = name
        self.original = original
        if is_torch_tensor(original):
            torch = torch_module()
            kind = _torch_kind(original)
            if kind is None:
                raise TraceError(f"tensor {name} of dtype {original.dtype} cannot be a table")
            values = original
            if kind == FLOAT and values.dtype not in (torch.float32, torch.float16, torch.bfloat16):
                values = values.to(torch.float32)
            elif kind != FLOAT and values.dtype not in (torch.int32, torch.int64):
                values = values.to(torch.int32)
            self.scalar = values.dim() == 0
            if self.scalar:
                values = values.reshape(1)
        else:
            array = np.asarray(original)
            kind = _numpy_kind(array.dtype)
            if kind is None:
                raise TraceError(f"array {name} of dtype {array.dtype} cannot be a table")
            if kind == FLOAT and array.dtype not in (np.float32, np.float16):
                array = array.astype(np.float32)
            elif kind != FLOAT and array.dtype not in (np.int32, np.int64):
                array = array.astype(np.int32)
            self.scalar = array.ndim == 0
            if self.scalar:
                array = array.reshape(1)
            values = array
        if not 1 <= len(values.shape) <= 3:
            raise TraceError(f"table {name} has {len(values.shape)} dimensions; tables have 1 to 3")
        if any(int(n) <= 0 for n in values.shape):
            raise TraceError(f"table {name} has an empty axis (shape {tuple(values.shape)})")
        self.kind = kind
        self.values = values
        self.shape = tuple(int(n) for n in values.shape)

    def __repr__(self):
        return f"TableSource({self.name!r}, {self.kind}, shape={self.shape})"


class Table:
    """The symbolic stand-in of a captured array inside a traced mod: indexing it with Ints reads the table."""

    __slots__ = ("source", "prefix")

    def __init__(self, source, prefix=()):
        self.source = source
        self.prefix = prefix

    @property
    def shape(self):
        shape = self.source.original.shape
        return type(shape)(shape[len(self.prefix):]) if is_torch_tensor(self.source.original) \
            else tuple(shape[len(self.prefix):])

    @property
    def ndim(self):
        return len(self.source.shape) - len(self.prefix)

    def dim(self):
        return self.ndim

    def size(self, axis=None):
        return self.shape if axis is None else self.shape[axis]

    def numel(self):
        return math.prod(self.shape)

    def __len__(self):
        return self.shape[0]

    @property
    def dtype(self):
        return self.source.original.dtype

    @property
    def device(self):
        return getattr(self.source.original, "device", "cpu")

    @property
    def requires_grad(self):
        return bool(getattr(self.source.original, "requires_grad", False))

    def __getitem__(self, index):
        if not isinstance(index, tuple):
            index = (index,)
        indices = list(self.prefix)
        for item in index:
            axis = len(indices)
            if axis >= len(self.source.shape):
                raise TraceError(f"table {self.source.name} of shape {self.source.shape} indexed with too many "
                                 f"indices")
            if isinstance(item, (slice, type(Ellipsis))) or item is None:
                raise TraceError(f"slicing table {self.source.name} inside a mod is not supported: index it "
                                 f"with one Int per axis (slice it outside the mod)")
            if isinstance(item, Table):
                raise TraceError(f"table {self.source.name} indexed with a whole table {item.source.name}")
            if isinstance(item, (bool, np.bool_)):
                raise TraceError(f"table {self.source.name} indexed with a bool")
            if isinstance(item, (int, np.integer)):
                extent = self.source.shape[axis]
                value = int(item)
                if not -extent <= value < extent:
                    raise IndexError(f"index {value} is out of bounds for axis {axis} of table "
                                     f"{self.source.name} with size {extent}")
                item = E.literal(value % extent)
            elif isinstance(item, Expr):
                if item.type == BOOL:
                    raise TraceError(f"table {self.source.name} is indexed with a Bool on axis {axis} "
                                     f"({E.print_text(item)}); table indices must be Ints")
            else:
                item = to_expr(item)
            indices.append(item)
        if len(indices) < len(self.source.shape):
            return Table(self.source, tuple(indices))
        return E.lookup(self.source, indices)

    def _scalar_error(self, *_, **__):
        raise TraceError(f"table {self.source.name} (shape {self.source.shape}) is used as a value: index it with "
                         f"one Int per axis, e.g. {self.source.name}[h, q - kv]")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _scalar_error
    __lt__ = __le__ = __gt__ = __ge__ = __neg__ = __bool__ = __float__ = __int__ = __index__ = _scalar_error
    __hash__ = object.__hash__

    def __repr__(self):
        return f"<table {self.source.name} {self.source.kind} shape={self.source.shape} prefix={len(self.prefix)}>"


# ---- converting operands --------------------------------------------------------------------------------------


def to_expr(x):
    """An operand as an Expr: Exprs as they are, numbers as literals, 0-d tensors and arrays as values."""
    if isinstance(x, Expr):
        return x
    if isinstance(x, (bool, int, float, np.bool_, np.integer, np.floating)):
        return E.literal(x)
    if isinstance(x, Table):
        x._scalar_error()
    if isinstance(x, table):
        return to_expr(_require_context("a table() value").table_value(x.array, x.name))
    if is_torch_tensor(x):
        return _require_context("a torch tensor").tensor_value(x)
    if isinstance(x, np.ndarray):
        if x.ndim == 0:
            return E.literal(x.item())
        raise TraceError(f"a NumPy array of shape {x.shape} is used as a value in a mod: capture it (or wrap it in "
                         f"table(...)) and index it with one Int per axis")
    raise TraceError(f"a {type(x).__name__} cannot be used in a mod")


def _require_context(what):
    context = _context()
    if context is None:
        raise TraceError(f"{what} can only be combined with symbolic values while a mod is being traced")
    return context


# ---- operators ------------------------------------------------------------------------------------------------


def _bool_op(op, x, y):
    x, y = to_expr(x), to_expr(y)
    if x.type == BOOL and y.type == BOOL:
        if op == "^":
            return E.binary("!=", x, y)
        return E.binary("&&" if op == "&" else "||", x, y)
    raise TraceError(f"'{op}' needs Bools (comparisons); got {x.type} and {y.type}: bitwise operators on Ints "
                     f"are not in the mod language")


def _truediv(x, y):
    x, y = E.promote(to_expr(x), to_expr(y))
    return E.binary("/", E.to_float(x), E.to_float(y))


def _floordiv(x, y):
    x, y = E.promote(to_expr(x), to_expr(y))
    if x.type == INT:
        return E.binary("/", x, y)  # the library's Int '/' floors, like Python's //
    # Float floor division: (x - x % y) / y, with the library's floored Float %.
    return E.binary("/", E.binary("-", x, E.binary("%", x, y)), y)


def _mod(x, y):
    return E.binary("%", to_expr(x), to_expr(y))


def fmod(x, y):
    """C's (and torch.fmod's) remainder, which takes the dividend's sign, from the library's floored ``%``."""
    x, y = E.promote(to_expr(x), to_expr(y))
    zero = E.literal(0) if x.type == INT else E.literal(0.0)
    r = E.binary("%", x, y)
    differ = E.binary("!=", E.binary("<", x, zero), E.binary("<", y, zero))
    return E.select(E.binary("&&", E.binary("!=", r, zero), differ), E.binary("-", r, y), r)


def trunc_div(x, y):
    """Division rounding toward zero (``torch.div(..., rounding_mode='trunc')``) for Ints."""
    x, y = E.promote(to_expr(x), to_expr(y))
    if x.type != INT:
        raise TraceError("division with rounding_mode='trunc' of Floats is not in the mod language")
    zero = E.literal(0)
    quotient = E.binary("/", x, y)
    inexact = E.binary("!=", E.binary("%", x, y), zero)
    differ = E.binary("!=", E.binary("<", x, zero), E.binary("<", y, zero))
    return E.select(E.binary("&&", inexact, differ), E.binary("+", quotient, E.literal(1)), quotient)


def _power(x, exponent):
    x = to_expr(x)
    if isinstance(exponent, Expr) and exponent.concrete is not None and exponent.reads == frozenset():
        exponent = exponent.concrete
    if isinstance(exponent, (bool, np.bool_)) or isinstance(exponent, Expr):
        raise TraceError("x ** y with a symbolic exponent y is not in the mod language (only a positive number "
                         "raised to a symbolic power, via exp and log)")
    if isinstance(exponent, (float, np.floating)) and float(exponent).is_integer():
        exponent = int(exponent)
    if isinstance(exponent, (int, np.integer)):
        n = int(exponent)
        if abs(n) > 16:
            raise TraceError(f"x ** {n}: only integer powers up to 16 in magnitude are traced (as repeated "
                             f"multiplication)")
        if n == 0:
            return E.literal(1.0 if x.type == FLOAT else 1)
        x = E.bool_to_int(x)
        result, base, k = None, x, abs(n)
        while k:
            if k & 1:
                result = base if result is None else E.binary("*", result, base)
            k >>= 1
            if k:
                base = E.binary("*", base, base)
        return result if n > 0 else _truediv(1.0, result)
    if exponent == 0.5:
        return E.unary("sqrt", x)
    if exponent == -0.5:
        return _truediv(1.0, E.unary("sqrt", x))
    raise TraceError(f"x ** {exponent!r}: only integer powers up to 16 and 0.5 are traced")


def _rpower(exponent, base):
    """``base ** exponent`` for a number base and a symbolic exponent: ``exp(exponent * log(base))``."""
    if isinstance(base, Expr):
        return _power(base, exponent)
    if isinstance(base, (bool, np.bool_)) or not isinstance(base, (int, float, np.integer, np.floating)):
        raise TraceError(f"cannot raise a {type(base).__name__} to a symbolic power")
    base = float(base)
    if base == 1.0:
        return E.literal(1.0)
    if base <= 0:
        raise TraceError(f"{base} ** x: only a positive base can be raised to a symbolic power")
    return E.unary("exp", E.binary("*", E.to_float(to_expr(exponent)), E.literal(math.log(base))))


def _concrete_or_fail(x, what):
    if x.concrete is not None and x.reads == frozenset():
        return x.concrete
    raise TraceError(
        f"{what} of a traced value ({E.print_text(x)}): a mod runs once on symbolic values, so Python control flow "
        f"(if, while, and, or, not), int(), float() and math functions cannot depend on score, b, h, q or kv. "
        f"Use & | ~ for and/or/not, torch.where / flexattention_swift.where for if, and torch or "
        f"flexattention_swift functions (exp, log, tanh, sqrt, abs, minimum, maximum, clamp)")


def _binary_method(op, reverse=False):
    def method(self, other):
        try:
            other = to_expr(other)
        except TraceError:
            return NotImplemented
        return E.binary(op, other, self) if reverse else E.binary(op, self, other)
    return method


def _install_operators():
    X = Expr
    X.__add__ = _binary_method("+")
    X.__radd__ = _binary_method("+", True)
    X.__sub__ = _binary_method("-")
    X.__rsub__ = _binary_method("-", True)
    X.__mul__ = _binary_method("*")
    X.__rmul__ = _binary_method("*", True)
    X.__truediv__ = lambda s, o: _truediv(s, o)
    X.__rtruediv__ = lambda s, o: _truediv(o, s)
    X.__floordiv__ = lambda s, o: _floordiv(s, o)
    X.__rfloordiv__ = lambda s, o: _floordiv(o, s)
    X.__mod__ = lambda s, o: _mod(s, o)
    X.__rmod__ = lambda s, o: _mod(o, s)
    X.__pow__ = lambda s, o, m=None: _power(s, o)
    X.__rpow__ = lambda s, o: _rpower(s, o)
    X.__neg__ = lambda s: E.negate(s)
    X.__pos__ = lambda s: s
    X.__abs__ = lambda s: E.unary("abs", s)
    X.__invert__ = lambda s: E.logical_not(s)
    X.__and__ = lambda s, o: _bool_op("&", s, o)
    X.__rand__ = lambda s, o: _bool_op("&", o, s)
    X.__or__ = lambda s, o: _bool_op("|", s, o)
    X.__ror__ = lambda s, o: _bool_op("|", o, s)
    X.__xor__ = lambda s, o: _bool_op("^", s, o)
    X.__rxor__ = lambda s, o: _bool_op("^", o, s)
    X.__eq__ = _binary_method("==")
    X.__ne__ = _binary_method("!=")
    X.__lt__ = _binary_method("<")
    X.__le__ = _binary_method("<=")
    X.__gt__ = _binary_method(">")
    X.__ge__ = _binary_method(">=")
    X.__hash__ = object.__hash__

    def _bool(self):
        return bool(_concrete_or_fail(self, "the truth value (if/and/or/not/while)"))

    def _int(self):
        value = _concrete_or_fail(self, "int()")
        return int(value)

    def _index(self):
        value = _concrete_or_fail(self, "an index (operator.index, e.g. indexing a NumPy array or a list)")
        if not isinstance(value, int) or isinstance(value, bool):
            raise TraceError(f"{E.print_text(self)} is not an Int")
        return value

    def _float(self):
        return float(_concrete_or_fail(self, "float()"))

    X.__bool__ = _bool
    X.__int__ = _int
    X.__index__ = _index
    X.__float__ = _float

    def _no_getitem(self, index):
        raise TraceError(f"a traced value ({E.print_text(self)}) cannot be indexed; index a captured table instead")

    def _no_iter(self):
        raise TraceError(f"a traced value ({E.print_text(self)}) is a scalar and cannot be iterated")

    def _no_len(self):
        raise TraceError(f"a traced value ({E.print_text(self)}) is a scalar and has no len()")

    def _no_round(self, *args):
        raise TraceError(f"round/floor/ceil/trunc of {E.print_text(self)} is not in the mod language")

    X.__getitem__ = _no_getitem
    X.__iter__ = _no_iter
    X.__len__ = _no_len
    X.__round__ = X.__floor__ = X.__ceil__ = X.__trunc__ = _no_round

    # Tensor-like methods, for code written for torch's flex_attention.
    X.abs = lambda s: E.unary("abs", s)
    X.exp = lambda s: E.unary("exp", s)
    X.log = lambda s: E.unary("log", s)
    X.sqrt = lambda s: E.unary("sqrt", s)
    X.tanh = lambda s: E.unary("tanh", s)
    X.sigmoid = lambda s: sigmoid(s)
    X.neg = X.negative = lambda s: E.negate(s)
    X.square = lambda s: _power(s, 2)
    X.pow = lambda s, o: _power(s, o)
    X.reciprocal = lambda s: _truediv(1.0, s)
    X.rsqrt = lambda s: _truediv(1.0, E.unary("sqrt", s))
    X.float = lambda s, *a, **k: E.to_float(s)
    X.half = X.bfloat16 = X.double = X.float
    X.int = X.long = lambda s, *a, **k: _to_int(s)
    X.bool = lambda s, *a, **k: _to_bool(s)
    X.to = lambda s, *a, **k: _to(s, *a, **k)
    X.type_as = lambda s, other: _to(s, getattr(other, "dtype", None))
    X.clamp = X.clip = lambda s, min=None, max=None: E.clamp(s, _opt(min), _opt(max))
    X.clamp_min = lambda s, m: E.binary("max", s, to_expr(m))
    X.clamp_max = lambda s, m: E.binary("min", s, to_expr(m))
    X.minimum = lambda s, o: E.binary("min", s, to_expr(o))
    X.maximum = lambda s, o: E.binary("max", s, to_expr(o))
    X.where = lambda s, condition, other: E.select(to_expr(condition), s, to_expr(other))
    X.masked_fill = lambda s, mask, value: E.select(to_expr(mask), to_expr(value), s)
    X.logical_not = lambda s: E.logical_not(s)
    X.logical_and = lambda s, o: _bool_op("&", s, o)
    X.logical_or = lambda s, o: _bool_op("|", s, o)
    X.logical_xor = lambda s, o: _bool_op("^", s, o)
    X.eq = X.__eq__
    X.ne = X.__ne__
    X.lt = X.less = X.__lt__
    X.le = X.less_equal = X.__le__
    X.gt = X.greater = X.__gt__
    X.ge = X.greater_equal = X.__ge__
    X.add = lambda s, o, alpha=1: E.binary("+", s, to_expr(o) if alpha == 1 else to_expr(o) * alpha)
    X.sub = lambda s, o, alpha=1: E.binary("-", s, to_expr(o) if alpha == 1 else to_expr(o) * alpha)
    X.mul = lambda s, o: E.binary("*", s, to_expr(o))
    X.div = X.divide = lambda s, o, rounding_mode=None: _div(s, o, rounding_mode)
    X.true_divide = lambda s, o: _truediv(s, o)
    X.floor_divide = lambda s, o: _floordiv(s, o)
    X.remainder = lambda s, o: _mod(s, o)
    X.fmod = lambda s, o: fmod(s, o)
    X.new_ones = lambda s, *a, **k: _new_constant(1, k)
    X.new_zeros = lambda s, *a, **k: _new_constant(0, k)
    X.new_full = lambda s, size, fill_value, **k: _new_constant(fill_value, k)
    X.new_tensor = lambda s, data, **k: _new_constant(data, k)
    X.item = lambda s: _concrete_or_fail(s, "item()")
    X.shape = property(lambda s: (torch_module().Size([]) if torch_module() else ()))
    X.ndim = property(lambda s: 0)
    X.dim = lambda s: 0
    X.numel = lambda s: 1
    X.size = lambda s, axis=None: X.shape.fget(s) if axis is None else X.shape.fget(s)[axis]
    X.dtype = property(_dtype_of)
    X.device = property(lambda s: _device())
    X.requires_grad = False
    X.is_floating_point = lambda s: s.type == FLOAT
    X.__array_priority__ = 1000
    X.__array_ufunc__ = _array_ufunc
    X.__array_function__ = _array_function
    X.__torch_function__ = classmethod(_torch_function)


def _opt(x):
    return None if x is None else to_expr(x)


def _to_int(x):
    x = to_expr(x)
    if x.type == FLOAT:
        raise TraceError(f"converting a Float to an Int ({E.print_text(x)}) is not in the mod language")
    return E.bool_to_int(x)


def _to_bool(x):
    x = to_expr(x)
    if x.type == BOOL:
        return x
    return E.binary("!=", x, E.literal(0.0 if x.type == FLOAT else 0))


def _dtype_of(x):
    torch = torch_module()
    if torch is None:
        return {INT: np.dtype(np.int64), FLOAT: np.dtype(np.float32), BOOL: np.dtype(np.bool_)}[x.type]
    return {INT: torch.int64, FLOAT: torch.float32, BOOL: torch.bool}[x.type]


def _device():
    torch = torch_module()
    return torch.device("cpu") if torch is not None else "cpu"


def _to(x, *args, **kwargs):
    dtype = kwargs.get("dtype")
    for a in args:
        if _is_dtype(a):
            dtype = a
    if dtype is None:
        return x
    kind = _dtype_kind(dtype)
    if kind == FLOAT:
        return E.to_float(to_expr(x))
    if kind == INT:
        return _to_int(x)
    if kind == BOOL:
        return _to_bool(x)
    raise TraceError(f"conversion to {dtype} is not in the mod language")


def _is_dtype(a):
    torch = torch_module()
    if torch is not None and isinstance(a, torch.dtype):
        return True
    if isinstance(a, (type, np.dtype)):
        try:
            np.dtype(a)
            return True
        except TypeError:
            return False
    return False


def _dtype_kind(dtype):
    torch = torch_module()
    if torch is not None and isinstance(dtype, torch.dtype):
        if dtype == torch.bool:
            return BOOL
        return FLOAT if dtype.is_floating_point else INT
    try:
        return _numpy_kind(np.dtype(dtype))
    except TypeError:
        return None


def _new_constant(value, kwargs):
    dtype = kwargs.get("dtype")
    if dtype is not None:
        kind = _dtype_kind(dtype)
        if kind == BOOL:
            return E.literal(bool(value))
        if kind == FLOAT:
            return E.literal(float(value))
        return E.literal(int(value))
    return E.literal(value)


def _div(x, y, rounding_mode=None):
    if rounding_mode is None:
        return _truediv(x, y)
    if rounding_mode == "floor":
        return _floordiv(x, y)
    if rounding_mode == "trunc":
        return trunc_div(x, y)
    raise TraceError(f"unknown rounding_mode {rounding_mode!r}")


# ---- public functions for NumPy users (and everyone) --------------------------------------------------------------


def _real(name, numpy_function, *args):
    """``numpy_function(*args)``, or torch's function of that name when an argument is a torch tensor."""
    if any(is_torch_tensor(a) for a in args):
        return getattr(torch_module(), name)(*args)
    return numpy_function(*args)


def tanh(x):
    """Hyperbolic tangent; on a traced value records ``tanh(x)`` (Ints are promoted to Float).

    On arrays or tensors it computes the value (NumPy or torch), so one mod also runs eagerly.
    """
    if not isinstance(x, Expr):
        return _real("tanh", np.tanh, x)
    return E.unary("tanh", x)


def exp(x):
    """Exponential; on a traced value records ``exp(x)``."""
    if not isinstance(x, Expr):
        return _real("exp", np.exp, x)
    return E.unary("exp", x)


def log(x):
    """Natural logarithm; on a traced value records ``log(x)``."""
    if not isinstance(x, Expr):
        return _real("log", np.log, x)
    return E.unary("log", x)


def sqrt(x):
    """Square root; on a traced value records ``sqrt(x)``."""
    if not isinstance(x, Expr):
        return _real("sqrt", np.sqrt, x)
    return E.unary("sqrt", x)


def abs(x):  # noqa: A001 - the mod language's name
    """Absolute value; on a traced value records ``abs(x)`` (Int stays Int)."""
    if not isinstance(x, Expr):
        return _real("abs", np.abs, x)
    return E.unary("abs", x)


def sigmoid(x):
    """The logistic function ``1 / (1 + exp(-x))``."""
    if not isinstance(x, Expr):
        if is_torch_tensor(x):
            return torch_module().sigmoid(x)
        return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))
    return _truediv(1.0, E.binary("+", E.literal(1.0), E.unary("exp", E.negate(E.to_float(x)))))


def where(condition, x, y):
    """``x`` where ``condition`` holds, else ``y``; on traced values records ``where(condition, x, y)``."""
    if not any(isinstance(a, Expr) for a in (condition, x, y)):
        if any(is_torch_tensor(a) for a in (condition, x, y)):
            torch = torch_module()
            device = next(a.device for a in (condition, x, y) if is_torch_tensor(a))
            return torch.where(torch.as_tensor(condition, device=device), x if is_torch_tensor(x) else
                               torch.as_tensor(x, device=device), y)
        return np.where(condition, x, y)
    return E.select(to_expr(condition), to_expr(x), to_expr(y))


def minimum(x, y):
    """The smaller of ``x`` and ``y``; on traced values records ``min(x, y)``."""
    if not any(isinstance(a, Expr) for a in (x, y)):
        if any(is_torch_tensor(a) for a in (x, y)):
            torch = torch_module()
            return torch.minimum(torch.as_tensor(x), torch.as_tensor(y))
        return np.minimum(x, y)
    return E.binary("min", to_expr(x), to_expr(y))


def maximum(x, y):
    """The larger of ``x`` and ``y``; on traced values records ``max(x, y)``."""
    if not any(isinstance(a, Expr) for a in (x, y)):
        if any(is_torch_tensor(a) for a in (x, y)):
            torch = torch_module()
            return torch.maximum(torch.as_tensor(x), torch.as_tensor(y))
        return np.maximum(x, y)
    return E.binary("max", to_expr(x), to_expr(y))


def clamp(x, min=None, max=None):  # noqa: A002
    """``x`` limited to ``[min, max]`` (either may be None); on traced values records ``clamp(x, min, max)``."""
    if not any(isinstance(a, Expr) for a in (x, min, max)):
        if is_torch_tensor(x):
            return torch_module().clamp(x, min, max)
        return np.clip(x, min, max)
    return E.clamp(to_expr(x), _opt(min), _opt(max))


q_len = E.variable("q_len")
"""The number of queries, as a traced Int (``q_len`` in the text; in decode, the sequence's length)."""
kv_len = E.variable("kv_len")
"""The number of keys, as a traced Int (``kv_len`` in the text; in decode, the sequence's length)."""


# ---- NumPy and torch hooks ------------------------------------------------------------------------------------

_UFUNCS = {
    "add": lambda x, y: E.binary("+", to_expr(x), to_expr(y)),
    "subtract": lambda x, y: E.binary("-", to_expr(x), to_expr(y)),
    "multiply": lambda x, y: E.binary("*", to_expr(x), to_expr(y)),
    "true_divide": _truediv,
    "divide": _truediv,
    "floor_divide": _floordiv,
    "remainder": _mod,
    "mod": _mod,
    "fmod": fmod,
    "power": lambda x, y: _power(x, y) if isinstance(x, Expr) else _rpower(y, x),
    "negative": lambda x: E.negate(to_expr(x)),
    "positive": lambda x: to_expr(x),
    "absolute": lambda x: E.unary("abs", to_expr(x)),
    "fabs": lambda x: E.unary("abs", E.to_float(to_expr(x))),
    "exp": lambda x: E.unary("exp", to_expr(x)),
    "log": lambda x: E.unary("log", to_expr(x)),
    "sqrt": lambda x: E.unary("sqrt", to_expr(x)),
    "tanh": lambda x: E.unary("tanh", to_expr(x)),
    "square": lambda x: _power(x, 2),
    "reciprocal": lambda x: _truediv(1.0, x),
    "minimum": lambda x, y: E.binary("min", to_expr(x), to_expr(y)),
    "maximum": lambda x, y: E.binary("max", to_expr(x), to_expr(y)),
    "fmin": lambda x, y: E.binary("min", to_expr(x), to_expr(y)),
    "fmax": lambda x, y: E.binary("max", to_expr(x), to_expr(y)),
    "equal": lambda x, y: E.binary("==", to_expr(x), to_expr(y)),
    "not_equal": lambda x, y: E.binary("!=", to_expr(x), to_expr(y)),
    "less": lambda x, y: E.binary("<", to_expr(x), to_expr(y)),
    "less_equal": lambda x, y: E.binary("<=", to_expr(x), to_expr(y)),
    "greater": lambda x, y: E.binary(">", to_expr(x), to_expr(y)),
    "greater_equal": lambda x, y: E.binary(">=", to_expr(x), to_expr(y)),
    "logical_and": lambda x, y: _bool_op("&", x, y),
    "logical_or": lambda x, y: _bool_op("|", x, y),
    "logical_xor": lambda x, y: _bool_op("^", x, y),
    "logical_not": lambda x: E.logical_not(to_expr(x)),
    "bitwise_and": lambda x, y: _bool_op("&", x, y),
    "bitwise_or": lambda x, y: _bool_op("|", x, y),
    "bitwise_xor": lambda x, y: _bool_op("^", x, y),
    "invert": lambda x: E.logical_not(to_expr(x)),
}


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    if method != "__call__" or kwargs.get("out") is not None:
        raise TraceError(f"numpy.{ufunc.__name__}.{method} is not supported on traced values")
    implementation = _UFUNCS.get(ufunc.__name__)
    if implementation is None:
        raise TraceError(f"numpy.{ufunc.__name__} is not in the mod language (supported: "
                         f"{', '.join(sorted(_UFUNCS))})")
    return implementation(*inputs)


def _array_function(self, func, types_, args, kwargs):
    name = func.__name__
    if name == "where" and len(args) == 3:
        return where(*args)
    if name in ("clip", "clamp"):
        x = args[0]
        low = args[1] if len(args) > 1 else kwargs.get("a_min", kwargs.get("min"))
        high = args[2] if len(args) > 2 else kwargs.get("a_max", kwargs.get("max"))
        return clamp(x, low, high)
    if name in ("abs", "absolute"):
        return E.unary("abs", to_expr(args[0]))
    raise TraceError(f"numpy.{name} is not in the mod language")


def _clamp_args(args, kwargs):
    x = args[0]
    low = args[1] if len(args) > 1 else kwargs.get("min")
    high = args[2] if len(args) > 2 else kwargs.get("max")
    return E.clamp(to_expr(x), _opt(low), _opt(high))


def _torch_min_max(op):
    def implementation(*args, **kwargs):
        if len(args) == 2 and "dim" not in kwargs and not isinstance(args[1], int) or "other" in kwargs:
            other = args[1] if len(args) > 1 else kwargs["other"]
            return E.binary(op, to_expr(args[0]), to_expr(other))
        if len(args) == 1 and not kwargs:
            return to_expr(args[0])  # the min/max of a scalar is itself
        raise TraceError(f"torch.{'minimum' if op == 'min' else 'maximum'} of two values is supported; "
                         f"reductions are not")
    return implementation


def _torch_where(condition, x=None, y=None, **kwargs):
    if x is None:
        x, y = kwargs.get("input"), kwargs.get("other")
    if x is None or y is None:
        raise TraceError("torch.where(condition) with one argument is not supported in a mod")
    return E.select(to_expr(condition), to_expr(x), to_expr(y))


def _torch_add(sign):
    def implementation(x, y, alpha=1, **_):
        y = to_expr(y)
        if alpha != 1:
            y = E.binary("*", y, to_expr(alpha))
        return E.binary(sign, to_expr(x), y)
    return implementation


def _getitem(x, index):
    if isinstance(x, Expr):
        return x[index]
    if is_torch_tensor(x):
        return _require_context("indexing a tensor").tensor_table(x)[index]
    raise TraceError(f"cannot index a {type(x).__name__} with a traced value")


def _full_like(x, fill_value, **kwargs):
    x = to_expr(x)
    dtype = kwargs.get("dtype")
    if dtype is not None:
        return _new_constant(fill_value, kwargs)
    return _new_constant(fill_value, {"dtype": _dtype_of(x)})


_TORCH = {
    "tanh": lambda x, **k: E.unary("tanh", to_expr(x)),
    "exp": lambda x, **k: E.unary("exp", to_expr(x)),
    "log": lambda x, **k: E.unary("log", to_expr(x)),
    "sqrt": lambda x, **k: E.unary("sqrt", to_expr(x)),
    "rsqrt": lambda x, **k: _truediv(1.0, E.unary("sqrt", to_expr(x))),
    "abs": lambda x, **k: E.unary("abs", to_expr(x)),
    "absolute": lambda x, **k: E.unary("abs", to_expr(x)),
    "__abs__": lambda x: E.unary("abs", to_expr(x)),
    "sigmoid": lambda x, **k: sigmoid(to_expr(x)),
    "expit": lambda x, **k: sigmoid(to_expr(x)),
    "special_expit": lambda x, **k: sigmoid(to_expr(x)),
    "square": lambda x, **k: _power(x, 2),
    "reciprocal": lambda x, **k: _truediv(1.0, x),
    "neg": lambda x, **k: E.negate(to_expr(x)),
    "negative": lambda x, **k: E.negate(to_expr(x)),
    "__neg__": lambda x: E.negate(to_expr(x)),
    "__pos__": lambda x: to_expr(x),
    "positive": lambda x: to_expr(x),
    "where": _torch_where,
    "minimum": lambda x, y, **k: E.binary("min", to_expr(x), to_expr(y)),
    "maximum": lambda x, y, **k: E.binary("max", to_expr(x), to_expr(y)),
    "fmin": lambda x, y, **k: E.binary("min", to_expr(x), to_expr(y)),
    "fmax": lambda x, y, **k: E.binary("max", to_expr(x), to_expr(y)),
    "min": _torch_min_max("min"),
    "max": _torch_min_max("max"),
    "clamp": lambda *a, **k: _clamp_args(a, k),
    "clip": lambda *a, **k: _clamp_args(a, k),
    "clamp_min": lambda x, m, **k: E.binary("max", to_expr(x), to_expr(m)),
    "clamp_max": lambda x, m, **k: E.binary("min", to_expr(x), to_expr(m)),
    "add": _torch_add("+"),
    "__add__": lambda x, y: E.binary("+", to_expr(x), to_expr(y)),
    "__radd__": lambda x, y: E.binary("+", to_expr(y), to_expr(x)),
    "sub": _torch_add("-"),
    "subtract": _torch_add("-"),
    "__sub__": lambda x, y: E.binary("-", to_expr(x), to_expr(y)),
    "__rsub__": lambda x, y: E.binary("-", to_expr(y), to_expr(x)),
    "rsub": lambda x, y, alpha=1, **k: _torch_add("-")(y, x, alpha),
    "mul": lambda x, y, **k: E.binary("*", to_expr(x), to_expr(y)),
    "multiply": lambda x, y, **k: E.binary("*", to_expr(x), to_expr(y)),
    "__mul__": lambda x, y: E.binary("*", to_expr(x), to_expr(y)),
    "__rmul__": lambda x, y: E.binary("*", to_expr(y), to_expr(x)),
    "div": lambda x, y, rounding_mode=None, **k: _div(x, y, rounding_mode),
    "divide": lambda x, y, rounding_mode=None, **k: _div(x, y, rounding_mode),
    "true_divide": lambda x, y, **k: _truediv(x, y),
    "__truediv__": lambda x, y: _truediv(x, y),
    "__rtruediv__": lambda x, y: _truediv(y, x),
    "__div__": lambda x, y: _truediv(x, y),
    "__rdiv__": lambda x, y: _truediv(y, x),
    "floor_divide": lambda x, y, **k: _floordiv(x, y),
    "__floordiv__": lambda x, y: _floordiv(x, y),
    "__rfloordiv__": lambda x, y: _floordiv(y, x),
    "remainder": lambda x, y, **k: _mod(x, y),
    "__mod__": lambda x, y: _mod(x, y),
    "__rmod__": lambda x, y: _mod(y, x),
    "fmod": lambda x, y, **k: fmod(x, y),
    "pow": lambda x, y, **k: _power(x, y) if isinstance(x, Expr) else _rpower(y, x),
    "__pow__": lambda x, y, *a: _power(x, y) if isinstance(x, Expr) else _rpower(y, x),
    "__rpow__": lambda x, y: _rpower(x, y) if isinstance(x, Expr) else _power(y, x),
    "float_power": lambda x, y, **k: _power(E.to_float(to_expr(x)), y),
    "eq": lambda x, y, **k: E.binary("==", to_expr(x), to_expr(y)),
    "__eq__": lambda x, y: E.binary("==", to_expr(x), to_expr(y)),
    "ne": lambda x, y, **k: E.binary("!=", to_expr(x), to_expr(y)),
    "not_equal": lambda x, y, **k: E.binary("!=", to_expr(x), to_expr(y)),
    "__ne__": lambda x, y: E.binary("!=", to_expr(x), to_expr(y)),
    "lt": lambda x, y, **k: E.binary("<", to_expr(x), to_expr(y)),
    "less": lambda x, y, **k: E.binary("<", to_expr(x), to_expr(y)),
    "__lt__": lambda x, y: E.binary("<", to_expr(x), to_expr(y)),
    "le": lambda x, y, **k: E.binary("<=", to_expr(x), to_expr(y)),
    "less_equal": lambda x, y, **k: E.binary("<=", to_expr(x), to_expr(y)),
    "__le__": lambda x, y: E.binary("<=", to_expr(x), to_expr(y)),
    "gt": lambda x, y, **k: E.binary(">", to_expr(x), to_expr(y)),
    "greater": lambda x, y, **k: E.binary(">", to_expr(x), to_expr(y)),
    "__gt__": lambda x, y: E.binary(">", to_expr(x), to_expr(y)),
    "ge": lambda x, y, **k: E.binary(">=", to_expr(x), to_expr(y)),
    "greater_equal": lambda x, y, **k: E.binary(">=", to_expr(x), to_expr(y)),
    "__ge__": lambda x, y: E.binary(">=", to_expr(x), to_expr(y)),
    "logical_and": lambda x, y, **k: _bool_op("&", x, y),
    "logical_or": lambda x, y, **k: _bool_op("|", x, y),
    "logical_xor": lambda x, y, **k: _bool_op("^", x, y),
    "logical_not": lambda x, **k: E.logical_not(to_expr(x)),
    "bitwise_and": lambda x, y, **k: _bool_op("&", x, y),
    "__and__": lambda x, y: _bool_op("&", x, y),
    "__rand__": lambda x, y: _bool_op("&", y, x),
    "bitwise_or": lambda x, y, **k: _bool_op("|", x, y),
    "__or__": lambda x, y: _bool_op("|", x, y),
    "__ror__": lambda x, y: _bool_op("|", y, x),
    "bitwise_xor": lambda x, y, **k: _bool_op("^", x, y),
    "__xor__": lambda x, y: _bool_op("^", x, y),
    "__rxor__": lambda x, y: _bool_op("^", y, x),
    "bitwise_not": lambda x, **k: E.logical_not(to_expr(x)),
    "__invert__": lambda x: E.logical_not(to_expr(x)),
    "__getitem__": _getitem,
    "full_like": _full_like,
    "zeros_like": lambda x, **k: _full_like(x, 0, **k),
    "ones_like": lambda x, **k: _full_like(x, 1, **k),
    "masked_fill": lambda x, mask, value, **k: E.select(to_expr(mask), to_expr(value), to_expr(x)),
    "float": lambda x, *a, **k: E.to_float(to_expr(x)),
    "half": lambda x, *a, **k: E.to_float(to_expr(x)),
    "bfloat16": lambda x, *a, **k: E.to_float(to_expr(x)),
    "double": lambda x, *a, **k: E.to_float(to_expr(x)),
    "int": lambda x, *a, **k: _to_int(x),
    "long": lambda x, *a, **k: _to_int(x),
    "bool": lambda x, *a, **k: _to_bool(x),
    "to": lambda x, *a, **k: _to(to_expr(x), *a, **k),
    "type_as": lambda x, other: _to(to_expr(x), getattr(other, "dtype", None)),
    "fmod_": None,
}


def _torch_function(cls, func, types_, args=(), kwargs=None):
    kwargs = kwargs or {}
    name = getattr(func, "__name__", str(func))
    implementation = _TORCH.get(name)
    if implementation is None:
        # A function of concrete values only (captured numbers used for shapes, say) runs for real.
        flat = list(args) + list(kwargs.values())
        if all(not isinstance(a, Expr) or (a.concrete is not None and not a.reads) for a in flat) \
                and not any(isinstance(a, Table) for a in flat):
            real_args = [a.concrete if isinstance(a, Expr) else a for a in args]
            real_kwargs = {k: (v.concrete if isinstance(v, Expr) else v) for k, v in kwargs.items()}
            return func(*real_args, **real_kwargs)
        raise TraceError(f"torch.{name} is not in the mod language; supported: abs, exp, log, sqrt, tanh, sigmoid, "
                         f"where, minimum, maximum, clamp, arithmetic, comparisons and logical operators")
    return implementation(*args, **kwargs)


_install_operators()
