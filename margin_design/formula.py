"""The one safe parser of margin formulas M = g(r): user text is data, never code.

Every formula a user gives (``margin-design audit "2.326*sqrt(2*r)"``, ``[rule] formula = ...`` in a TOML rule
file, :func:`margin_design.audit.parse_formula` in Python, the web explorer) goes through
:func:`parse_formula_expr`. Units: ``r`` is the variance of daily returns (decimal^2), ``sigma = sqrt(r)`` the
daily volatility (decimal); the value of the formula is the margin ratio M per unit notional.

Grammar (a whitelist; anything else is refused)
-----------------------------------------------
* numbers: integer and decimal literals (``2``, ``0.01``, ``2.5e-3``, ``1_000``); not complex (``1j``), not
  booleans, not strings or bytes;
* the names ``r`` (daily variance), ``sigma`` (daily vol) and the constants ``pi`` and ``e``;
* ``+ - * / **`` between expressions, unary ``-`` and ``+``, parentheses; ``^`` is accepted as a power (as in a
  spreadsheet) and means exactly ``**``: same precedence, right-associative (``2*r^2`` is ``2*r**2``);
* calls of these functions, with positional arguments only:
  ``sqrt(x)`` square root; ``exp(x)``; ``log(x)`` natural log, or ``log(x, b)`` in base b; ``abs(x)`` or
  ``Abs(x)``; ``min(a, b, ...)``, ``Min``, ``max(a, b, ...)``, ``Max`` (2 to 10 arguments, :data:`MAX_MINMAX_ARGS`);
  ``Heaviside(x)`` the step, 1 for x > 0 and 0 for x < 0 (the audit reads a rule's one-sided limits at the
  step); ``floor(x)``, ``ceiling(x)`` or ``ceil(x)``.

Refused (one-sentence :class:`~margin_design.errors.InputError` naming the formula and the construct, raised
before anything is built): attribute access, subscripts, lambdas, comprehensions, keyword or starred
arguments, strings, bytes, f-strings, comparisons, ``and``/``or``/``not``, ``//``, ``%``, ``@``, bit operators,
walrus, if-expressions, tuples, lists, sets, dicts, unknown names and functions, and any character outside
printable ASCII (Python folds look-alike letters such as fullwidth or mathematical italic ones into ASCII
names; a formula must read exactly as it computes, so they are refused rather than folded).

Limits (each refusal is one sentence; parsing any input of any size takes bounded time)
-----------------------------------------------------------------------------------------
* at most 1,000 characters (:data:`MAX_LENGTH`), 60 levels of nesting (:data:`MAX_DEPTH`: parentheses, calls,
  powers and unary signs; a chain ``a + b - c + ...`` or ``a * b / c ...`` is one level) and 400 numbers, names,
  operators and calls (:data:`MAX_NODES`);
* a constant exponent p must satisfy ``|p| <= 100`` (:data:`MAX_EXPONENT`; so ``9**9**9`` and ``(r+1)**1000000`` are refused
  before sympy constructs anything), and a power must not need exact integers of more than 4096 bits
  (:data:`MAX_EXACT_BITS`; ``(10**300*r)**100`` is refused);
* every constant that is an argument of a function or a power, and every exact number left in the result, must be
  a real number within the float64 range (|x| <= ~1.8e308), so sympy never evaluates a huge or complex constant;
* the result must be real and finite as an expression: ``sqrt(-r)`` (= I sqrt(r)), ``log(-r)`` and ``1/(r - r)``
  are refused here; values that are complex or not finite only at some r (``log(r - 1)``) are refused where the
  formula is evaluated (:class:`margin_design.audit.FormulaRule`, naming the daily vol).

Safety
------
The text is only *parsed* by :func:`ast.parse` (``mode="eval"``), which builds a syntax tree and runs nothing. The
tree is checked node by node against the whitelist above, and the sympy expression is then built by this module
from the checked nodes only, with sympy constructors (``sp.Integer``, ``sp.Float`` of a literal's digits,
``sp.sqrt``, ``sp.Max``, ...). Nothing here calls ``eval``, ``exec``, ``compile``, ``sympify`` or ``parse_expr``.
Downstream, ``sympy.lambdify`` generates numpy code from the expression; that is safe because the expression can
contain only numbers, the positive symbol ``r`` and the whitelisted functions, which lambdify prints as literals
and numpy calls.
"""

from __future__ import annotations

import ast
import math
import re
import sys
from dataclasses import dataclass
from typing import Any

from margin_design.errors import InputError

__all__ = [
    "Formula",
    "parse_formula_expr",
    "quote_formula",
    "symbol_r",
    "symbol_sigma",
    "FUNCTIONS",
    "FUNCTION_NAMES",
    "CONSTANT_NAMES",
    "VARIABLE_NAMES",
    "ALLOWED",
    "MAX_LENGTH",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_EXPONENT",
    "MAX_EXACT_BITS",
    "MAX_MINMAX_ARGS",
]

#: Longest formula accepted (characters).
MAX_LENGTH = 1000
#: Deepest nesting (parentheses, calls, powers, unary signs; a chain a + b - c + ... or a * b / c is one level).
MAX_DEPTH = 60
#: Most elements (numbers, names, operators, calls) in a formula.
MAX_NODES = 400
#: Largest |p| of a constant exponent p.
MAX_EXPONENT = 100
#: Largest exact integer (bits) a power may create, estimated before sympy computes it.
MAX_EXACT_BITS = 4096
#: Most arguments of min / max.
MAX_MINMAX_ARGS = 10
#: Largest magnitude of a constant (the float64 range).
MAX_MAGNITUDE = sys.float_info.max
#: Characters shown of a formula quoted in an error message.
QUOTE_CHARS = 80

#: The variables: r = daily variance, sigma = daily vol = sqrt(r).
VARIABLE_NAMES = ("r", "sigma")
#: The constants (pi, Euler's number e).
CONSTANT_NAMES = ("pi", "e")
#: Function name -> (sympy function name, least, most positional arguments).
FUNCTIONS: dict[str, tuple[str, int, int]] = {
    "sqrt": ("sqrt", 1, 1),
    "exp": ("exp", 1, 1),
    "log": ("log", 1, 2),
    "abs": ("Abs", 1, 1),
    "Abs": ("Abs", 1, 1),
    "min": ("Min", 2, MAX_MINMAX_ARGS),
    "Min": ("Min", 2, MAX_MINMAX_ARGS),
    "max": ("Max", 2, MAX_MINMAX_ARGS),
    "Max": ("Max", 2, MAX_MINMAX_ARGS),
    "Heaviside": ("Heaviside", 1, 1),
    "floor": ("floor", 1, 1),
    "ceiling": ("ceiling", 1, 1),
    "ceil": ("ceiling", 1, 1),
}
FUNCTION_NAMES = tuple(FUNCTIONS)
#: What a formula may use: the end of every "not allowed" message.
ALLOWED = (
    "a formula may use numbers, r (daily variance), sigma (daily vol), pi, e, + - * / ** (or ^), parentheses "
    f"and the functions {', '.join(FUNCTION_NAMES)}"
)

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_BAD_BINOPS = {
    ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>",
    ast.BitOr: "|", ast.BitAnd: "&", ast.BitXor: "^",
}
_FLOAT_LITERAL = re.compile(r"(?:[0-9][0-9_]*)?\.?(?:[0-9][0-9_]*)?(?:[eE][+-]?[0-9][0-9_]*)?")
_SPACES = {"\t": " ", "\n": " ", "\r": " "}


@dataclass(frozen=True)
class Formula:
    """A parsed formula: ``text`` (stripped, on one line), ``expr`` (sympy expression in :func:`symbol_r`, the daily variance,
    with sigma replaced by sqrt(r)), ``variable`` ("sigma" if the text uses sigma and not r, else "r")."""

    text: str
    expr: Any
    variable: str

    @property
    def is_constant(self) -> bool:
        """True if the formula does not depend on r or sigma."""
        return not self.expr.free_symbols


def symbol_r():
    """The sympy symbol of the daily variance r (positive)."""
    import sympy as sp

    return sp.Symbol("r", positive=True)


def symbol_sigma():
    """The sympy symbol of the daily vol sigma (positive); :func:`parse_formula_expr` replaces it by sqrt(r)."""
    import sympy as sp

    return sp.Symbol("sigma", positive=True)


def quote_formula(text: str) -> str:
    """``text`` quoted for a one-line message: repr (control characters escaped), cut to QUOTE_CHARS characters."""
    s = str(text)
    if len(s) > QUOTE_CHARS:
        s = s[: QUOTE_CHARS - 3] + "..."
    return repr(s)


class _Refused(Exception):
    """Internal: carries the end of the message ("uses ..., which is not allowed" or a limit) to parse_formula_expr."""


def _not_allowed(what: str) -> _Refused:
    return _Refused(f"uses {what}, which is not allowed; {ALLOWED}")


def parse_formula_expr(text: str) -> Formula:
    """Parse ``text``, an expression in r (daily variance) and/or sigma (daily vol), into a :class:`Formula`.

    Raises :class:`~margin_design.errors.InputError` (one sentence naming the formula) for anything outside the
    whitelist of the module docstring, beyond its limits, or not real and finite as an expression. Runs no user
    code: the text is parsed by :func:`ast.parse` and the sympy expression is built from checked nodes.
    """
    if not isinstance(text, str):
        raise InputError(f"a formula must be text (a string), not {type(text).__name__}.")
    if not text.strip():
        raise InputError(f"formula {quote_formula(text)} is empty; give an expression in r (daily variance) or sigma (daily vol).")
    shown = quote_formula(text.strip())
    if len(text) > MAX_LENGTH:
        raise InputError(f"formula {shown} has {len(text)} characters, more than the limit of {MAX_LENGTH}.")
    for ch in text:
        if ch not in _SPACES and not (" " <= ch <= "~"):
            what = "the control character" if ord(ch) < 128 else "the non-ASCII character"
            raise InputError(
                f"formula {shown} contains {what} {ch!r} (U+{ord(ch):04X}), which is not allowed; write it in plain ASCII: {ALLOWED}."
            )
    # tabs and line breaks are blanks (a long formula may span lines of a TOML file); '^' is a power, as in a
    # spreadsheet (and as sympy's convert_xor read it): a token-level '**', so it binds and associates like '**'
    clean = text.strip().translate(str.maketrans(_SPACES))
    source = clean.replace("^", "**")
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        if isinstance(exc, (RecursionError, MemoryError)):
            reason = "nested too deeply"
        else:
            reason = getattr(exc, "msg", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"formula {shown} cannot be parsed ({reason}); write an expression in r or sigma such as '2.326*sqrt(2*r)'.") from None
    try:
        _check_tree(tree.body)
        built = _Builder(source).build(tree.body)
        expr, variable = _finish(built)
    except _Refused as exc:
        raise InputError(f"formula {shown} {exc}.") from None
    except InputError:
        raise
    except Exception as exc:  # sympy on whitelisted, bounded input: PrecisionExhausted, RecursionError, ...
        raise InputError(f"formula {shown} cannot be evaluated exactly ({type(exc).__name__}); simplify its constants.") from None
    return Formula(text=clean, expr=expr, variable=variable)


# ----------------------------------------------------------------------------------------------
# Pass 1: the whitelist, size and depth (iterative: nothing is built yet)
# ----------------------------------------------------------------------------------------------


def _describe(node: ast.AST) -> str | None:
    """What ``node`` is if it is not allowed, or None if this node itself is allowed (its children are checked apart)."""
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool):
            return f"the boolean {v}"
        if isinstance(v, int):
            return None
        if isinstance(v, float):
            return None if math.isfinite(v) else "a number beyond the float range (about 1.8e308)"
        if isinstance(v, complex):
            return f"the complex number {v!r}"
        if isinstance(v, str):
            return f"a string ({quote_formula(v)})"
        if isinstance(v, bytes):
            return "a bytes literal"
        return f"the constant {v!r}"
    if isinstance(node, ast.Name):
        if node.id in VARIABLE_NAMES or node.id in CONSTANT_NAMES:
            return None
        if node.id in FUNCTIONS:
            return f"the function {node.id} without calling it"
        return f"the unknown symbol {node.id}"
    if isinstance(node, ast.BinOp):
        if type(node.op) in _BINOPS:
            return None
        return f"the operator {_BAD_BINOPS.get(type(node.op), type(node.op).__name__)}"
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            return None
        return "the operator not" if isinstance(node.op, ast.Not) else "the operator ~"
    if isinstance(node, ast.Call):
        f = node.func
        if not isinstance(f, ast.Name):
            return "a call of something other than a named function"
        if f.id not in FUNCTIONS:
            if f.id in VARIABLE_NAMES or f.id in CONSTANT_NAMES:
                return f"a call of {f.id} (not a function)"
            return f"the unknown function {f.id}()"
        return None
    if isinstance(node, ast.keyword):
        return f"keyword arguments ({node.arg}=...)" if node.arg is not None else "keyword arguments (**...)"
    names = {
        ast.Attribute: lambda n: f"attribute access (.{n.attr})",
        ast.Subscript: lambda n: "subscripts ([...])",
        ast.Lambda: lambda n: "a lambda",
        ast.ListComp: lambda n: "a comprehension",
        ast.SetComp: lambda n: "a comprehension",
        ast.DictComp: lambda n: "a comprehension",
        ast.GeneratorExp: lambda n: "a comprehension",
        ast.JoinedStr: lambda n: "an f-string",
        ast.FormattedValue: lambda n: "an f-string",
        ast.Compare: lambda n: "a comparison",
        ast.BoolOp: lambda n: "the operator and/or",
        ast.NamedExpr: lambda n: "an assignment (:=)",
        ast.IfExp: lambda n: "an if-else expression",
        ast.Tuple: lambda n: "a tuple",
        ast.List: lambda n: "a list",
        ast.Set: lambda n: "a set",
        ast.Dict: lambda n: "a dict",
        ast.Starred: lambda n: "starred arguments (*...)",
        ast.Slice: lambda n: "a slice",
        ast.Await: lambda n: "await",
        ast.Yield: lambda n: "yield",
        ast.YieldFrom: lambda n: "yield",
    }
    fn = names.get(type(node))
    return fn(node) if fn else f"a Python {type(node).__name__} expression"


def _position(node: ast.AST) -> tuple[int, int]:
    """Where a refused construct starts in the text (an attribute at its dot, a subscript at its '[', a call of an
    expression at its '('): the refusal names the first one a reader meets."""
    if isinstance(node, ast.Attribute):
        return node.end_lineno, node.end_col_offset - len(node.attr) - 1
    if isinstance(node, ast.Call) and not isinstance(node.func, ast.Name):
        return node.func.end_lineno, node.func.end_col_offset
    if isinstance(node, ast.Subscript):
        return node.value.end_lineno, node.value.end_col_offset
    return node.lineno, node.col_offset


def _chain_group(node: ast.AST) -> str | None:
    """'add' for + and -, 'mul' for * and /: a left-nested chain of one group (a + b - c + ...) is one level deep."""
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, (ast.Add, ast.Sub)):
            return "add"
        if isinstance(node.op, (ast.Mult, ast.Div)):
            return "mul"
    return None


def _check_tree(root: ast.AST) -> None:
    """Depth and size first, then the whitelist and arities; the refusal names the construct that comes first in
    the text. Iterative over every node of the tree (no recursion on user input, nothing built yet)."""
    stack = [(root, 1)]
    count = 0
    nodes = []
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (ast.expr_context, ast.operator, ast.unaryop, ast.boolop, ast.cmpop)):
            continue
        count += 1
        if depth > MAX_DEPTH:
            raise _Refused(f"is nested more than {MAX_DEPTH} levels deep, beyond the limit")
        if count > MAX_NODES:
            raise _Refused(f"has more than {MAX_NODES} elements (numbers, names, operators, calls), beyond the limit")
        nodes.append(node)
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            children = children[1:]   # the function's name is checked with the call, not as a variable
        group = _chain_group(node)
        stack.extend((c, depth if group and c is node.left and _chain_group(c) == group else depth + 1) for c in children)
    refused = []
    for order, node in enumerate(nodes):   # pre-order: at one position the outer construct comes first
        if not isinstance(node, (ast.expr, ast.keyword)):
            continue   # parts of a refused construct (comprehension clauses, lambda arguments): the construct is named
        what = _describe(node)
        if what is not None:
            # constructs (attribute access, calls, strings, ...) before names: in sqrt.__globals__ the construct matters
            refused.append((isinstance(node, ast.Name), _position(node), order, what))
    if refused:
        raise _not_allowed(min(refused)[3])
    for node in nodes:
        if isinstance(node, ast.Call):
            name = node.func.id
            _, lo, hi = FUNCTIONS[name]
            k = len(node.args)
            if not lo <= k <= hi:
                want = f"exactly {lo}" if lo == hi else f"{lo} to {hi}"
                raise _Refused(f"calls {name} with {k} argument{'s' if k != 1 else ''}; {name} takes {want}")


# ----------------------------------------------------------------------------------------------
# Pass 2: build the sympy expression from checked nodes (recursion bounded by MAX_DEPTH)
# ----------------------------------------------------------------------------------------------


def _constant_value(expr) -> float:
    """The value of a constant sympy expression as a float; refuses complex, infinite or out-of-range values."""
    import sympy as sp

    if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise _Refused("is not finite (a division by zero or an infinite constant)")
    v = sp.N(expr, 15)
    re_, im_ = v.as_real_imag()
    if im_ != 0:
        raise _Refused(f"has the constant {_short(expr)} whose value is not real, which is not allowed")
    try:
        x = float(re_)
    except (OverflowError, TypeError, ValueError):
        x = math.inf
    if not math.isfinite(x) or abs(x) > MAX_MAGNITUDE:
        raise _Refused(f"has the constant {_short(expr)}, beyond the float range (about 1.8e308)")
    return x


def _short(expr) -> str:
    s = str(expr)
    return s if len(s) <= 40 else s[:37] + "..."


def _exact_bits(expr) -> int:
    """Bits of the largest numerator or denominator of an exact number in ``expr``."""
    import sympy as sp

    return max((max(abs(q.p).bit_length(), q.q.bit_length()) for q in expr.atoms(sp.Rational)), default=0)


class _Builder:
    def __init__(self, source: str):
        import sympy as sp

        self.sp = sp
        self.source = source
        self.names = {"r": symbol_r(), "sigma": symbol_sigma(), "pi": sp.pi, "e": sp.E}

    def build(self, node: ast.AST):
        sp = self.sp
        if isinstance(node, ast.Constant):
            return self._number(node)
        if isinstance(node, ast.Name):
            return self.names[node.id]
        if isinstance(node, ast.UnaryOp):
            x = self.build(node.operand)
            return -x if isinstance(node.op, ast.USub) else x
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            return self._power(self.build(node.left), self.build(node.right))
        if isinstance(node, ast.BinOp):
            # a left-nested chain a + b - c + ... (or a * b / c ...) is folded in a loop, left to right as Python
            # reads it: the recursion depth is the nesting depth checked in pass 1, not the number of terms
            group = _chain_group(node)
            chain = []
            while _chain_group(node) == group:
                chain.append((type(node.op), node.right))
                node = node.left
            acc = self.build(node)
            for op, right in reversed(chain):
                b = self.build(right)
                acc = acc + b if op is ast.Add else acc - b if op is ast.Sub else acc * b if op is ast.Mult else acc / b
            return acc
        if isinstance(node, ast.Call):
            sym_name, _, _ = FUNCTIONS[node.func.id]
            args = [self.build(a) for a in node.args]
            for a in args:
                if not a.free_symbols:
                    _constant_value(a)   # no function ever sees a huge or complex constant
            return getattr(sp, sym_name)(*args)
        raise _not_allowed(_describe(node) or type(node).__name__)  # pragma: no cover - pass 1 refused it

    def _number(self, node: ast.Constant):
        sp = self.sp
        v = node.value
        if isinstance(v, int):
            if v.bit_length() > 1024:
                raise _Refused(f"has the number {str(v)[:20]}..., beyond the float range (about 1.8e308)")
            return sp.Integer(v)
        # a float literal: sympy's Float of its own digits (the precision the old sympy parser gave it)
        seg = ast.get_source_segment(self.source, node)
        if seg is None or not _FLOAT_LITERAL.fullmatch(seg):
            return sp.Float(repr(v))
        return sp.Float(seg.replace("_", ""))

    def _power(self, base, p):
        sp = self.sp
        if not p.free_symbols:
            pv = _constant_value(p)
            if abs(pv) > MAX_EXPONENT:
                raise _Refused(f"raises to the power {_short(p)}, beyond the limit |p| <= {MAX_EXPONENT}")
            if _exact_bits(base) * abs(pv) > MAX_EXACT_BITS:
                raise _Refused(f"raises {_short(base)} to the power {_short(p)}, which needs exact numbers of more than {MAX_EXACT_BITS} bits")
            if not base.free_symbols:
                bv = _constant_value(base)
                if bv != 0 and abs(pv) * abs(math.log(abs(bv))) > math.log(MAX_MAGNITUDE):
                    raise _Refused(f"raises {_short(base)} to the power {_short(p)}, beyond the float range (about 1.8e308)")
        elif not base.free_symbols:
            _constant_value(base)
        return sp.Pow(base, p)


def _finish(expr):
    """sigma -> sqrt(r); refuse expressions that are not real or not finite, or hold numbers beyond the float range."""
    import sympy as sp

    if not isinstance(expr, sp.Expr):  # pragma: no cover - every builder returns an Expr
        raise _Refused("is not an algebraic expression in r or sigma")
    r, sigma = symbol_r(), symbol_sigma()
    syms = expr.free_symbols
    variable = "sigma" if sigma in syms and r not in syms else "r"
    out = expr.xreplace({sigma: sp.sqrt(r)})
    if out.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise _Refused("is not finite (a division by zero or an infinite constant)")
    if out.has(sp.I) or out.is_extended_real is False:
        raise _Refused(f"is not real ({_short(out)}): a margin formula must have a real value for every r > 0")
    for q in out.atoms(sp.Rational):
        if abs(q.p).bit_length() - q.q.bit_length() > 1023:
            raise _Refused(f"has the number {_short(q)}, beyond the float range (about 1.8e308)")
    if not out.free_symbols:
        _constant_value(out)
    return out, variable
