"""Tracing Python score and mask mods into the library's textual form.

A mod is called once with symbolic arguments (:class:`~flexattention_swift._expr.Expr`); their operators, the
torch functions they are given to (``__torch_function__``) and the NumPy ufuncs (``__array_ufunc__``) record an
expression. Before the call the function is rebuilt (``types.FunctionType`` over the same code) with its closure
cells, the globals it names and its defaults substituted: captured torch tensors, NumPy arrays and
:func:`table` wrappers become named tables, captured Python/NumPy numbers become named parameters
(``fa_parameter``: a new value does not change the text). Helper functions it captures are rebuilt the same way.
"""

import functools
import re
import types

import numpy as np

from . import _expr as E
from ._dlpack import is_torch_tensor
from ._expr import BOOL, FLOAT, INT, Expr, Param
from ._symbolic import Table, TableSource, _context, _numpy_kind, _state, _torch_kind, table, to_expr
from .errors import TraceError


# ---- rebuilding functions with captured values substituted ---------------------------------------------------


def _sanitize(name):
    name = re.sub(r"[^A-Za-z0-9_]", "_", name or "")
    if not name:
        name = "v"
    if name[0].isdigit():
        name = "v_" + name
    return name


_SKIPPED_MODULES = ("torch", "numpy", "flexattention_swift", "math", "functools", "builtins")


def _code_names(code, seen=None):
    """The global names a code object and the code nested in it read, in order."""
    names = []
    stack = [code]
    visited = set()
    while stack:
        c = stack.pop()
        if id(c) in visited:
            continue
        visited.add(id(c))
        names.extend(c.co_names)
        stack.extend(const for const in c.co_consts if isinstance(const, types.CodeType))
    return list(dict.fromkeys(names))


class TraceContext:
    """The state of one trace: names handed out, substituted captures, tables made from tensors."""

    def __init__(self, reserved=()):
        self.names = set(reserved)
        self.by_site = {}
        self.by_object = {}
        self.functions = {}
        self.keep = []
        self.auto_tables = 0

    # Names ---------------------------------------------------------------------------------------------------------
    def allocate(self, preferred):
        base = _sanitize(preferred)
        name = base if base not in E.RESERVED else base + "_"
        suffix = 1
        while name in self.names or name in E.RESERVED:
            name = f"{base}_{suffix}"
            suffix += 1
        self.names.add(name)
        return name

    def claim(self, name):
        if not E.is_identifier(name) or name in E.RESERVED:
            raise TraceError(f"{name!r} cannot name a table or parameter of the mod language (an identifier that "
                             f"is not a reserved word)")
        if name in self.names:
            raise TraceError(f"the name {name!r} is used twice")
        self.names.add(name)
        return name

    # Values ----------------------------------------------------------------------------------------------------------
    def parameter(self, value, name, exact=False):
        if isinstance(value, np.ndarray):
            value = value.item()
        if isinstance(value, (int, np.integer)):
            value = int(value)
            if not -(1 << 63) <= value < (1 << 63):
                raise TraceError(f"captured integer {name} = {value} does not fit in 64 bits")
            kind = INT
        else:
            value = float(value)
            kind = FLOAT
        name = self.claim(name) if exact else self.allocate(name)
        return E.parameter(Param(name, kind, value))

    def table_source(self, array, name, exact=False):
        source = self.by_object.get(id(array))
        if source is not None:
            return source
        name = self.claim(name) if exact else self.allocate(name)
        source = TableSource(name, array)
        self.by_object[id(array)] = source
        self.keep.append(array)
        return source

    def table_value(self, array, name=None, exact=False):
        """The stand-in of a captured array: a Table, or for a 0-d one its value."""
        source = self.table_source(array, name or "table", exact)
        if source.scalar:
            return E.lookup(source, [E.literal(0)])
        return Table(source)

    def tensor_table(self, tensor):
        """A Table for a tensor met inside the mod (not captured where we could see it): named tensorN."""
        source = self.by_object.get(id(tensor))
        if source is None:
            source = self.table_source(tensor, f"tensor{self.auto_tables}")
            self.auto_tables += 1
        return Table(source) if not source.scalar else E.lookup(source, [E.literal(0)])

    def tensor_value(self, tensor):
        """A tensor used as an operand: 0-d CPU tensors without gradient are literals, others tables."""
        if tensor.dim() == 0:
            if tensor.device.type == "cpu" and not tensor.requires_grad and id(tensor) not in self.by_object:
                return E.literal(tensor.item())
            result = self.tensor_table(tensor)
            return result
        raise TraceError(f"a tensor of shape {tuple(tensor.shape)} is used as a value in a mod: index it with one "
                         f"Int per axis (e.g. bias[h, q - kv])")

    # Substitution ----------------------------------------------------------------------------------------------------
    def substitute(self, value, name, site):
        if site in self.by_site:
            return self.by_site[site]
        result = self._substitute(value, name, site)
        self.by_site[site] = result
        return result

    def _substitute(self, value, name, site):
        if isinstance(value, (Expr, Table)) or isinstance(value, (bool, np.bool_)) or value is None:
            return value
        if isinstance(value, (int, float, np.integer, np.floating)):
            return self.parameter(value, name)
        if isinstance(value, table):
            return self.table_value(value.array, value.name or name, exact=value.name is not None)
        if isinstance(value, np.ndarray):
            if value.ndim == 0 and _numpy_kind(value.dtype) in (INT, FLOAT):
                return self.parameter(value, name)
            if 1 <= value.ndim <= 3 and _numpy_kind(value.dtype) is not None:
                return self.table_value(value, name)
            return value
        if is_torch_tensor(value):
            if value.dim() == 0:
                kind = _torch_kind(value)
                if kind in (INT, FLOAT) and value.device.type == "cpu" and not value.requires_grad:
                    return self.parameter(value.item(), name)
                if kind is not None:
                    return self.table_value(value, name)
                return value
            if 1 <= value.dim() <= 3 and _torch_kind(value) is not None:
                return self.table_value(value, name)
            return value
        if isinstance(value, types.FunctionType):
            if (value.__module__ or "").split(".")[0] in _SKIPPED_MODULES:
                return value
            return self.rebuild(value)
        if isinstance(value, types.MethodType) and isinstance(value.__func__, types.FunctionType):
            function = self.substitute(value.__func__, name, ("method", site))
            return types.MethodType(function, value.__self__)
        if isinstance(value, functools.partial):
            function = self.substitute(value.func, name, ("partial", site))
            args = tuple(self.substitute(a, f"{name}_{i}", ("partial", site, i)) for i, a in enumerate(value.args))
            keywords = {k: self.substitute(v, k, ("partial", site, k)) for k, v in value.keywords.items()}
            return functools.partial(function, *args, **keywords)
        if isinstance(value, (tuple, list)) and len(value) <= 64:
            items = [self.substitute(v, f"{name}_{i}", ("item", site, i)) for i, v in enumerate(value)]
            if all(a is b for a, b in zip(items, value)):
                return value
            return type(value)(items) if type(value) in (tuple, list) else value
        return value

    def rebuild(self, function):
        """A copy of ``function`` whose closure cells, referenced globals and defaults are substituted."""
        done = self.functions.get(id(function))
        if done is not None:
            return done
        self.keep.append(function)
        code = function.__code__
        globals_ = function.__globals__
        new_globals = dict(globals_)
        cells = None
        if function.__closure__:
            cells = tuple(types.CellType() for _ in function.__closure__)
        rebuilt = types.FunctionType(code, new_globals, function.__name__, None, cells)
        self.functions[id(function)] = rebuilt
        if cells:
            for name, old, cell in zip(code.co_freevars, function.__closure__, cells):
                try:
                    contents = old.cell_contents
                except ValueError:
                    continue  # an empty cell (a name assigned later) stays empty
                cell.cell_contents = self.substitute(contents, name, ("cell", id(old)))
        for name in _code_names(code):
            if name in globals_:
                new_globals[name] = self.substitute(globals_[name], name, ("global", id(globals_), name))
        if function.__defaults__:
            names = code.co_varnames[code.co_argcount - len(function.__defaults__):code.co_argcount]
            rebuilt.__defaults__ = tuple(
                self.substitute(v, n, ("default", id(function), n)) for n, v in zip(names, function.__defaults__))
        if function.__kwdefaults__:
            rebuilt.__kwdefaults__ = {
                k: self.substitute(v, k, ("kwdefault", id(function), k)) for k, v in function.__kwdefaults__.items()}
        rebuilt.__qualname__ = function.__qualname__
        rebuilt.__module__ = function.__module__
        rebuilt.__dict__.update(function.__dict__)
        return rebuilt

    def callable(self, mod):
        """``mod`` ready to be called with symbols: a rebuilt function, method, partial or object call."""
        if isinstance(mod, (types.FunctionType, types.MethodType, functools.partial)):
            return self.substitute(mod, getattr(mod, "__name__", "mod"), ("mod", id(mod)))
        call = getattr(type(mod), "__call__", None)
        if isinstance(call, types.FunctionType) and not isinstance(mod, type):
            return self.substitute(types.MethodType(call, mod), "mod", ("mod", id(mod)))
        if callable(mod):
            return mod
        raise TraceError(f"a mod must be a callable or a string of the mod language, got {type(mod).__name__}")


# ---- traced mods --------------------------------------------------------------------------------------------------


class TracedMod:
    """A mod in the textual form with the tables and parameters it reads.

    Attributes: ``text``; ``params`` (list of Param); ``tables`` (list of TableSource); ``expr`` (the Expr, or
    None for a mod given as text); ``reads`` (names of the variables it reads, when known).
    """

    __slots__ = ("text", "params", "tables", "expr", "reads")

    def __init__(self, text, params, tables, expr=None, reads=None):
        self.text = text
        self.params = params
        self.tables = tables
        self.expr = expr
        self.reads = reads

    def float_tables(self):
        return [t for t in self.tables if t.kind == FLOAT]

    def __repr__(self):
        return f"TracedMod({self.text!r}, params={self.params}, tables={self.tables})"


SCORE_ARGS = ("score", "b", "h", "q", "kv")
MASK_ARGS = ("b", "h", "q", "kv")


def _call(function, args, kind, original):
    context_before = _context()
    try:
        return function(*args)
    except TraceError as error:
        raise TraceError(f"{kind} {_describe(original)} does not trace: {error.message}") from None
    except (TypeError, ValueError, RuntimeError, IndexError, AttributeError, NotImplementedError) as error:
        raise TraceError(f"{kind} {_describe(original)} does not trace: {type(error).__name__}: {error}") from error
    finally:
        _state.context = context_before


def _describe(mod):
    name = getattr(mod, "__qualname__", None) or getattr(mod, "__name__", None) or type(mod).__name__
    code = getattr(mod, "__code__", None)
    if code is not None:
        return f"{name} ({code.co_filename}:{code.co_firstlineno})"
    return name


def trace_expr(mod, kind, context, score=None):
    """Calls ``mod`` (rebuilt in ``context``) with symbols and returns the resulting Expr of the right type.

    ``kind`` is ``'score_mod'`` or ``'mask_mod'``; ``score`` replaces the ``score`` symbol (for composition).
    """
    previous = _context()
    _state.context = context
    try:
        function = context.callable(mod)
        if kind == "score_mod":
            args = (score if score is not None else E.variable("score"),) + tuple(E.variable(v) for v in MASK_ARGS)
        else:
            args = tuple(E.variable(v) for v in MASK_ARGS)
        _state.context = context
        result = _call(function, args, kind, mod)
        _state.context = context
        if isinstance(result, Table):
            result._scalar_error()
        try:
            result = to_expr(result)
        except TraceError as error:
            raise TraceError(f"{kind} {_describe(mod)} returned {error.message}") from None
    finally:
        _state.context = previous
    if kind == "score_mod":
        if result.type == BOOL:
            raise TraceError(f"score_mod {_describe(mod)} returned a Bool ({E.print_text(result)}); a score mod "
                             f"returns the new score (use torch.where(condition, score, -inf) to mask)")
        return E.to_float(result)
    if result.type != BOOL:
        raise TraceError(f"mask_mod {_describe(mod)} returned an {result.type.capitalize()} "
                         f"({E.print_text(result)}); a mask mod returns a Bool (a comparison)")
    return result


def finish(expr):
    """The TracedMod of a traced Expr: its text and the parameters and tables it reads."""
    params, tables = E.collect(expr)
    reads = {v for v in expr.reads if v in E.VARIABLES}
    return TracedMod(E.print_text(expr), params, tables, expr, reads)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def text_identifiers(text):
    return set(_IDENTIFIER.findall(text))


def from_text(text, mod_args=None, context=None):
    """A TracedMod for a mod given as text; ``mod_args`` maps the names it reads to arrays, tensors or numbers."""
    if not isinstance(text, str):
        raise TraceError(f"expected a string, got {type(text).__name__}")
    context = context or TraceContext()
    used = text_identifiers(text)
    params, tables = [], []
    for name, value in (mod_args or {}).items():
        if name not in used:
            continue
        if not isinstance(name, str) or not E.is_identifier(name) or name in E.RESERVED:
            raise TraceError(f"mod_args key {name!r} is not a usable name (an identifier that is not a reserved "
                             f"word of the mod language)")
        if isinstance(value, table):
            value = value.array
        if isinstance(value, (bool, np.bool_)):
            raise TraceError(f"mod_args[{name!r}] is a bool; parameters are ints or floats")
        if isinstance(value, (int, float, np.integer, np.floating)) or (
                isinstance(value, np.ndarray) and value.ndim == 0):
            params.append(context.parameter(value, name, exact=True).payload)
        elif is_torch_tensor(value) or isinstance(value, np.ndarray):
            tables.append(context.table_source(value, name, exact=True))
        else:
            raise TraceError(f"mod_args[{name!r}] is a {type(value).__name__}; expected an array, a tensor or a "
                             f"number")
    reads = {v for v in E.VARIABLES if v in used}
    return TracedMod(text, params, tables, None, reads)


def trace(mod, kind, mod_args=None):
    """The TracedMod of a mod given as a callable or as text (``kind``: 'score_mod' or 'mask_mod')."""
    if isinstance(mod, str):
        return from_text(mod, mod_args)
    context = TraceContext()
    return finish(trace_expr(mod, kind, context))


def split_bindings(text):
    """(bindings, formula) of a text: the ``let NAME = ...;`` prefix (possibly empty) and the final formula."""
    index = text.rfind(";")
    if index < 0:
        return "", text
    return text[:index + 1] + " ", text[index + 1:]


def substitute_score(text, replacement):
    """The text with every ``score`` identifier replaced by ``(replacement)``."""
    return re.sub(r"(?<![A-Za-z0-9_])score(?![A-Za-z0-9_])", f"({replacement})", text)
