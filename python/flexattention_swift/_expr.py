"""Symbolic expressions of the mod language and their printing in the library's textual form.

An :class:`Expr` is one immutable node of a DAG: a variable (``score b h q kv q_len kv_len``), a literal, a named
parameter, an operator or function over other nodes, or a table lookup. Python operators on an Expr build new
nodes (see ``_symbolic.py`` for the operators, torch and NumPy hooks); :func:`print_text` prints the textual form
the library parses (``ModParser.swift``), with the fewest parentheses the precedence rules allow and ``let``
bindings for long or deep expressions.

Types follow the library: ``int`` (64-bit, Python-style floor ``/`` and ``%``), ``float`` (32-bit) and
``bool``. Binary operators need operands of one type; :func:`promote` turns Ints into Floats as torch would.
"""

import math

import numpy as np

from .errors import TraceError

INT = "int"
FLOAT = "float"
BOOL = "bool"

VARIABLES = ("score", "b", "h", "q", "kv", "q_len", "kv_len")
FUNCTIONS = ("abs", "min", "max", "clamp", "where", "exp", "log", "tanh", "sqrt", "float")
RESERVED = frozenset(VARIABLES + FUNCTIONS + ("let",))

# Binding strength, loosest first (ModPrinter.Level).
OR, AND, NOT, COMPARISON, ADDITIVE, MULTIPLICATIVE, UNARY, ATOM = range(8)
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
_LEVELS = {"||": OR, "&&": AND, "+": ADDITIVE, "-": ADDITIVE, "*": MULTIPLICATIVE, "/": MULTIPLICATIVE,
           "%": MULTIPLICATIVE, "min": ATOM, "max": ATOM}
for _op in COMPARISONS:
    _LEVELS[_op] = COMPARISON

# The longest formula printed without bindings, and the most operator levels in one formula or binding.
FORMULA_LENGTH = 4096
BINDING_HEIGHT = 24


def is_identifier(name):
    """Whether ``name`` is an identifier of the textual form: ASCII letter or _, then letters, digits, _."""
    if not name or not name.isascii():
        return False
    return (name[0].isalpha() or name[0] == "_") and all(c.isalnum() or c == "_" for c in name)


class Param:
    """A named scalar of a mod (``fa_parameter``): an Int or a Float whose value is passed at run time."""

    __slots__ = ("name", "type", "value")

    def __init__(self, name, type_, value):
        self.name = name
        self.type = type_
        self.value = value

    def __repr__(self):
        return f"Param({self.name!r}, {self.type}, {self.value!r})"


class Expr:
    """A node of a traced mod. Behaves like a scalar torch tensor inside a score or mask mod.

    Attributes: ``op`` (the operation), ``args`` (operand nodes), ``payload`` (a literal's value, a variable's
    name, a Param, a TableSource, an operator), ``type`` (``'int'``, ``'float'`` or ``'bool'``), ``height``,
    ``concrete`` (the Python value when the node depends only on literals and parameters, else None), and
    ``reads`` (the variables it depends on).
    """

    __slots__ = ("op", "args", "payload", "type", "height", "concrete", "reads", "__weakref__")

    # Leaves: 'var', 'lit', 'param'. Others: 'unary' (payload: '-', '!', 'abs', 'exp', 'log', 'tanh', 'sqrt',
    # 'float'), 'binary' (payload: operator), 'clamp', 'where', 'lookup' (payload: TableSource).
    def __init__(self, op, args, payload, type_, concrete=None):
        self.op = op
        self.args = args
        self.payload = payload
        self.type = type_
        self.height = 1 + max((a.height for a in args), default=0)
        self.concrete = concrete
        reads = frozenset()
        for a in args:
            reads = reads | a.reads
        if op == "var":
            reads = frozenset((payload,))
        elif op == "lookup":
            reads = reads | {"<table>"}
        self.reads = reads

    # Printing --------------------------------------------------------------------------------------------------
    def __repr__(self):
        return f"Expr({print_text(self)!r}: {self.type})"

    def __str__(self):
        return print_text(self)

    __hash__ = object.__hash__


def variable(name):
    return Expr("var", (), name, FLOAT if name == "score" else INT)


def literal(value):
    """A literal node for a Python bool, int or float (NumPy scalars included)."""
    if isinstance(value, (bool, np.bool_)):
        return Expr("lit", (), bool(value), BOOL, bool(value))
    if isinstance(value, (int, np.integer)):
        value = int(value)
        if not -(1 << 63) <= value < (1 << 63):
            raise TraceError(f"the integer {value} does not fit in the mod language's 64-bit Int")
        return Expr("lit", (), value, INT, value)
    if isinstance(value, (float, np.floating)):
        return Expr("lit", (), float(value), FLOAT, float(value))
    raise TraceError(f"cannot use a {type(value).__name__} in a mod")


def parameter(param):
    return Expr("param", (), param, param.type, param.value)


# ---- building with the library's typing rules -------------------------------------------------------------------


def _concrete(values):
    return all(v is not None for v in values)


def _c(x):
    return x.concrete


def bool_to_int(x):
    """torch's promotion of a Bool used as a number: 1 where true, 0 where false."""
    if x.type != BOOL:
        return x
    if x.op == "lit":
        return literal(int(x.payload))
    return select(x, literal(1), literal(0))


def to_float(x):
    """``float(x)`` for an Int (folded for a literal), x for a Float."""
    x = bool_to_int(x)
    if x.type == FLOAT:
        return x
    if x.op == "lit":
        return literal(float(x.payload))
    return Expr("unary", (x,), "float", FLOAT, None if x.concrete is None else float(x.concrete))


def promote(*xs):
    """Bools become Ints (next to numbers), and Ints become Floats next to a Float, as torch promotes."""
    if any(x.type != BOOL for x in xs):
        xs = tuple(bool_to_int(x) for x in xs)
    if any(x.type == FLOAT for x in xs):
        xs = tuple(to_float(x) for x in xs)
    return xs


def _floor_div(x, y):
    if y == 0:
        return None
    return x // y


def _floor_mod_float(x, y):
    if y == 0:
        return None
    return x - math.floor(x / y) * y


def _int_mod(x, y):
    if y == 0:
        return None
    return x % y


def _safe(function):
    def wrapped(*args):
        try:
            return function(*args)
        except (ArithmeticError, ValueError):
            return None
    return wrapped


_BINARY_EVAL = {
    "+": lambda x, y: x + y,
    "-": lambda x, y: x - y,
    "*": lambda x, y: x * y,
    "==": lambda x, y: x == y,
    "!=": lambda x, y: x != y,
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
    "&&": lambda x, y: x and y,
    "||": lambda x, y: x or y,
    "min": min,
    "max": max,
}


def binary(op, x, y):
    """``x op y`` with operands promoted (Bool to Int next to numbers, Int to Float next to a Float)."""
    if op in ("&&", "||"):
        if x.type != BOOL or y.type != BOOL:
            raise TraceError(f"'{op}' needs two Bools, got {x.type} and {y.type}")
        # Fold literal operands, as `True & mask` in torch's and_masks helpers would otherwise leave `0 == 0`.
        for a, b in ((x, y), (y, x)):
            if a.op == "lit":
                if (op == "&&") == a.payload:
                    return b
                return a
    elif op in ("==", "!=") and x.type == BOOL and y.type == BOOL:
        pass
    elif x.type == BOOL and y.type == BOOL:
        x, y = bool_to_int(x), bool_to_int(y)
    else:
        x, y = promote(x, y)
    if op == "/" or op == "%":
        if x.type == INT:
            ev = _floor_div if op == "/" else _int_mod
        else:
            ev = (lambda a, b: a / b if b != 0 else None) if op == "/" else _floor_mod_float
    else:
        ev = _BINARY_EVAL[op]
    type_ = BOOL if op in COMPARISONS or op in ("&&", "||") else x.type
    concrete = _safe(ev)(x.concrete, y.concrete) if _concrete((x.concrete, y.concrete)) else None
    return Expr("binary", (x, y), op, type_, concrete)


def negate(x):
    x = bool_to_int(x)
    if x.op == "lit":
        return literal(-x.payload)
    return Expr("unary", (x,), "-", x.type, None if x.concrete is None else -x.concrete)


def logical_not(x):
    if x.type != BOOL:
        raise TraceError(f"'not' (~ or torch.logical_not) needs a Bool, got an {x.type}: {print_text(x)}")
    if x.op == "lit":
        return literal(not x.payload)
    return Expr("unary", (x,), "!", BOOL, None if x.concrete is None else not x.concrete)


_UNARY_EVAL = {
    "abs": abs,
    "exp": _safe(math.exp),
    "log": _safe(math.log),
    "tanh": math.tanh,
    "sqrt": _safe(math.sqrt),
}


def unary(function, x):
    """abs (Int or Float), or exp, log, tanh, sqrt (Int promoted to Float)."""
    x = bool_to_int(x)
    if function != "abs":
        x = to_float(x)
    concrete = None if x.concrete is None else _UNARY_EVAL[function](x.concrete)
    return Expr("unary", (x,), function, x.type, concrete)


def select(condition, then, otherwise):
    """``where(condition, then, otherwise)``; the branches are promoted to one type."""
    if condition.type != BOOL:
        raise TraceError(f"where needs a Bool condition, got an {condition.type}: {print_text(condition)}")
    if then.type == BOOL and otherwise.type == BOOL:
        pass
    else:
        then, otherwise = promote(then, otherwise)
    if condition.op == "lit":
        return then if condition.payload else otherwise
    concrete = None
    if _concrete((condition.concrete, then.concrete, otherwise.concrete)):
        concrete = then.concrete if condition.concrete else otherwise.concrete
    return Expr("where", (condition, then, otherwise), None, then.type, concrete)


def clamp(x, low, high):
    """``clamp(x, low, high)``; either bound may be None (then it is ``max``/``min``)."""
    if low is None and high is None:
        raise TraceError("clamp needs at least one of min and max")
    if low is None:
        return binary("min", x, high)
    if high is None:
        return binary("max", x, low)
    x, low, high = promote(x, low, high)
    concrete = None
    if _concrete((x.concrete, low.concrete, high.concrete)):
        concrete = min(max(x.concrete, low.concrete), high.concrete)
    return Expr("clamp", (x, low, high), None, x.type, concrete)


def lookup(source, indices):
    """``name[i, j]``: reads a table with Int indices."""
    for i, index in enumerate(indices):
        if index.type != INT:
            raise TraceError(f"table {source.name} is indexed with a {index.type.capitalize()} on axis {i} "
                             f"({print_text(index)}); table indices must be Ints")
    node = Expr("lookup", tuple(indices), source, INT if source.kind != FLOAT else FLOAT)
    if source.kind == BOOL:
        return binary("!=", node, literal(0))
    return node


# ---- printing ---------------------------------------------------------------------------------------------------


def unique_nodes(root):
    """Every distinct node (by identity) once, operands before their users."""
    order = []
    seen = set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for child in reversed(node.args):
            if id(child) not in seen:
                stack.append((child, False))
    return order


def format_float(value):
    """A Float literal as the lexer reads it (the shortest text of the 32-bit value)."""
    f = np.float32(value)
    if np.isnan(f):
        return "(0.0 / 0.0)", ATOM
    if np.isinf(f):
        return ("(-1.0 / 0.0)" if f < 0 else "(1.0 / 0.0)"), ATOM
    text = np.format_float_scientific(f, unique=True, trim="0") if (f != 0 and not 1e-4 <= abs(f) < 1e16) \
        else np.format_float_positional(f, unique=True, trim="0")
    if "e" in text:
        mantissa, exponent = text.split("e")
        if mantissa.endswith("."):
            mantissa += "0"
        text = mantissa + "e" + exponent
    elif "." not in text:
        text += ".0"
    elif text.endswith("."):
        text += "0"
    return text, (UNARY if text.startswith("-") else ATOM)


class _Renderer:
    def __init__(self, names):
        self.names = names

    def render(self, node):
        name = self.names.get(id(node))
        if name is not None:
            return name, ATOM
        op = node.op
        if op == "var":
            return node.payload, ATOM
        if op == "lit":
            value = node.payload
            if node.type == BOOL:
                return ("0 == 0" if value else "0 != 0"), COMPARISON
            if node.type == INT:
                return str(value), (UNARY if value < 0 else ATOM)
            return format_float(value)
        if op == "param":
            return node.payload.name, ATOM
        if op == "unary":
            function = node.payload
            if function == "-":
                return "-" + self.operand(node.args[0], UNARY), UNARY
            if function == "!":
                return "!" + self.operand(node.args[0], NOT), NOT
            return self.call(function, node.args), ATOM
        if op == "binary":
            level = _LEVELS[node.payload]
            if level == ATOM:
                return self.call(node.payload, node.args), ATOM
            left = self.operand(node.args[0], ADDITIVE if level == COMPARISON else level)
            right = self.operand(node.args[1], min(level + 1, ATOM))
            return f"{left} {node.payload} {right}", level
        if op == "clamp":
            return self.call("clamp", node.args), ATOM
        if op == "where":
            return self.call("where", node.args), ATOM
        if op == "lookup":
            return f"{node.payload.name}[{', '.join(self.render(a)[0] for a in node.args)}]", ATOM
        raise AssertionError(op)

    def operand(self, node, at_least):
        text, level = self.render(node)
        return f"({text})" if level < at_least else text

    def call(self, name, args):
        return f"{name}({', '.join(self.render(a)[0] for a in args)})"


def _expanded_length(nodes):
    lengths = {}
    for node in nodes:
        lengths[id(node)] = min(sum(lengths[id(a)] for a in node.args) + 8, FORMULA_LENGTH + 1)
    return lengths[id(nodes[-1])]


def print_text(root):
    """The textual form of ``root``: one formula, or ``let`` bindings then a formula when long or deep."""
    nodes = unique_nodes(root)
    if root.height <= BINDING_HEIGHT and _expanded_length(nodes) <= FORMULA_LENGTH:
        return _Renderer({}).render(root)[0]
    uses = {}
    for node in nodes:
        for a in node.args:
            uses[id(a)] = uses.get(id(a), 0) + 1
    taken = set()
    for node in nodes:
        if node.op == "param":
            taken.add(node.payload.name)
        elif node.op == "lookup":
            taken.add(node.payload.name)
    names = {}
    heights = {}
    parts = []
    counter = 0
    for node in nodes:
        if not node.args:
            continue
        height = 1 + max(heights.get(id(a), 0) for a in node.args)
        heights[id(node)] = height
        if node is root or not (uses.get(id(node), 0) > 1 or height >= BINDING_HEIGHT):
            continue
        while f"x{counter}" in taken:
            counter += 1
        name = f"x{counter}"
        counter += 1
        parts.append(f"let {name} = {_Renderer(names).render(node)[0]}; ")
        names[id(node)] = name
        heights[id(node)] = 0
    return "".join(parts) + _Renderer(names).render(root)[0]


def collect(root):
    """The parameters and table sources an expression reads, each once, in order of first appearance."""
    params, tables = {}, {}
    for node in unique_nodes(root):
        if node.op == "param":
            params.setdefault(node.payload.name, node.payload)
        elif node.op == "lookup":
            tables.setdefault(node.payload.name, node.payload)
    return list(params.values()), list(tables.values())
