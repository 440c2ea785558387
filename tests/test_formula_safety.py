"""The one safe formula parser (margin_design.formula): user text is data, never code.

* a corpus of injection attempts, each trying to create a canary file, is refused with one sentence through every
  entry point: the parser, the audit's parse_formula / load_rule, a TOML rule file ``[rule] formula = ...`` and the
  command line (in-process, plus real runs of the installed ``margin-design`` console script);
* the accepted forms parse to the sympy expressions they always meant (built here by hand) and evaluate to the
  numbers numpy gives for the same formula;
* non-real and non-finite formulas, the limits (length, nesting, size, exponents, number range) and the dispatch
  of load_rule between files and formulas.
"""

from __future__ import annotations

import ast
import math
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from conftest import BASE_CONFIG, EXAMPLES, ROOT

from margin_design import formula as F
from margin_design.audit import FormulaRule, load_rule, parse_formula
from margin_design.cli import main as cli_main
from margin_design.errors import InputError

#: A formula evaluated two ways (sympy expression via lambdify vs numpy by hand): a few ulps, plus the relative
#: offset FORMULA_SIDE_EPS = 1e-12 at which the audit reads a non-smooth formula (its value moves by < 1e-12).
EVAL_RTOL = 1e-11
#: Daily vols at which formulas are compared numerically (decimal); none on a step of the formulas below.
VOLS = np.array([0.004, 0.0123, 0.0217, 0.0371])

R = sp.Symbol("r", positive=True)
S = sp.sqrt(R)

# ----------------------------------------------------------------------------------------------
# The corpus: (id, payload with {c} for the canary path, what the refusal names)
# ----------------------------------------------------------------------------------------------

CORPUS = [
    ("globals-chain", "sqrt.__globals__['__builtins__']['__import__']('os').system('touch {c}') + r", "attribute access (.__globals__)"),
    ("dunder-import", "__import__('os').system('touch {c}')", "unknown function __import__()"),
    ("import-plus-r", "r + __import__('os').system('touch {c}')", "unknown function __import__()"),
    ("tuple-class-bases", "().__class__.__bases__[0].__subclasses__()[0].__init__.__globals__['__builtins__']['open']('{c}', 'w')", "a tuple"),
    ("int-class-base", "(1).__class__.__base__.__subclasses__()[-1].__init__.__globals__['__builtins__']['open']('{c}', 'w')", "attribute access (.__class__)"),
    ("getattr", "getattr(__import__('os'), 'system')('touch {c}')", "unknown function getattr()"),
    ("lambda-call", "(lambda: __import__('os').system('touch {c}'))()", "a lambda"),
    ("lambda-r", "(lambda r: open('{c}', 'w'))(r)", "a lambda"),
    ("lambda-default", "(lambda x=open('{c}', 'w'): x)()", "a lambda"),
    ("list-comprehension", "[__import__('os').system('touch {c}') for _ in (1,)]", "a comprehension"),
    ("generator", "sum(open('{c}', 'w') for _ in [1])", "unknown function sum()"),
    ("dict-comprehension", "{k: open('{c}', 'w') for k in 'a'}", "a comprehension"),
    ("set-comprehension", "{open('{c}', 'w') for k in 'a'}", "a comprehension"),
    ("keyword-x", "sqrt(x=open('{c}', 'w'))", "keyword arguments (x=...)"),
    ("keyword-evaluate", "Max(r, 1, evaluate=open('{c}', 'w'))", "keyword arguments (evaluate=...)"),
    ("double-star", "Max(r, **{'x': open('{c}', 'w')})", "keyword arguments (**...)"),
    ("starred", "Max(*[open('{c}', 'w')], r)", "starred arguments"),
    ("subscript-open", "sqrt.__globals__['__builtins__']['open']('{c}', 'w')", "attribute access (.__globals__)"),
    ("f-string", "f\"{open('{c}', 'w')}\"", "an f-string"),
    ("string", "'{c}'", "a string"),
    ("bytes", "b'{c}'", "a bytes literal"),
    ("walrus", "(x := open('{c}', 'w'))", "an assignment (:=)"),
    ("exec", "exec(\"open('{c}', 'w')\")", "unknown function exec()"),
    ("eval", "eval(\"__import__('os').system('touch {c}')\")", "unknown function eval()"),
    ("open", "open('{c}', 'w')", "unknown function open()"),
    ("breakpoint", "r + breakpoint() + open('{c}', 'w').write('x')", "unknown function breakpoint()"),
    ("compile", "compile(\"open('{c}', 'w')\", 'f', 'eval')", "unknown function compile()"),
    ("fullwidth-open", "ｏｐｅｎ('{c}', 'w')", "non-ASCII character"),          # NFKC folds it into open
    ("math-italic-open", "𝘰𝘱𝘦𝘯('{c}', 'w')", "non-ASCII character"),          # likewise
    ("lookalike-r-eval", "𝑟 + 𝘦𝘷𝘢𝘭(\"open('{c}', 'w')\")", "non-ASCII character"),
    ("rtl-override", "r + len(open('{c}\u202e', 'w'))", "non-ASCII character"),
    ("Symbol", "Symbol(open('{c}', 'w')) + r", "unknown function Symbol()"),
    ("Function", "Function('f')(r) + open('{c}', 'w')", "unknown function Function()"),
    ("sympify", "sympify(\"__import__('os').system('touch {c}')\")", "unknown function sympify()"),
    ("Float-of-old-globals", "Float(open('{c}', 'w'))", "unknown function Float()"),
    ("r-class", "r.__class__.__init__.__globals__['__builtins__']['open']('{c}', 'w')", "attribute access (.__class__)"),
    ("if-expression", "1 if r else open('{c}', 'w')", "an if-else expression"),
    ("comparison-or", "r < 1 or open('{c}', 'w')", "the operator and/or"),
    ("deep-nesting", "sqrt(" * 70 + "open('{c}', 'w')" + ")" * 70, "nested more than"),
    ("huge-exponent", "open('{c}', 'w') and 9**9**9**9", "the operator and/or"),
    ("very-long", "r" + " + 0" * 300 + " + open('{c}', 'w')", "more than the limit of 1000"),
    ("null-byte", "r\x00 + open('{c}', 'w')", "control character"),
    ("form-feed", "r\x0c + open('{c}', 'w')", "control character"),
    ("newline-statement", "r\n__import__('os').system('touch {c}')", "cannot be parsed"),
    ("crlf-statement", "r\r\n__import__('os').system('touch {c}')", "cannot be parsed"),
    ("semicolon", "r; __import__('os').system('touch {c}')", "cannot be parsed"),
    ("import-os", "import os; os.system('touch {c}')", "cannot be parsed"),
    ("globals-call", "globals()['__builtins__']['open']('{c}', 'w')", "unknown function globals()"),
    ("builtins-attribute", "__builtins__.open('{c}', 'w')", "attribute access (.open)"),
    ("loader", "__loader__.load_module('os').system('touch {c}')", "attribute access (.load_module)"),
    ("xor-power", "r ^ open('{c}', 'w')", "unknown function open()"),
    ("list-literal", "[open('{c}', 'w'), r][1]", "a list"),
    ("matmul", "r @ open('{c}', 'w')", "the operator @"),
    ("yield", "(yield open('{c}', 'w'))", "yield"),
    ("await", "await open('{c}', 'w')", "await"),
    ("call-of-r", "r(open('{c}', 'w'))", "a call of r (not a function)"),
]
IDS = [c[0] for c in CORPUS]


def test_corpus_is_large_and_armed():
    """At least 30 attempts, and every one (bar the NUL byte) is real Python that exec/eval would run."""
    assert len(CORPUS) >= 30 and len(set(IDS)) == len(IDS)
    for name, payload, _ in CORPUS:
        if "\x00" in payload:
            continue
        ast.parse(payload.replace("{c}", "/tmp/x"), mode="exec")   # raises if the payload were not Python


@pytest.fixture
def canary(tmp_path, monkeypatch):
    """An absolute path a payload tries to create; the working folder is tmp_path, so relative writes land there too."""
    monkeypatch.chdir(tmp_path)
    return tmp_path / "canary"


def _arm(payload: str, canary: Path) -> str:
    return payload.replace("{c}", str(canary))


def _only(tmp_path: Path, *names: str) -> None:
    """Nothing but ``names`` was created in tmp_path (no canary, no output folder, no stray file)."""
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


@pytest.mark.parametrize("name, payload, names", CORPUS, ids=IDS)
def test_parser_refuses(tmp_path, canary, name, payload, names):
    text = _arm(payload, canary)
    with pytest.raises(InputError) as exc:
        F.parse_formula_expr(text)
    msg = str(exc.value)
    assert names in msg and msg.startswith("formula ") and "\n" not in msg
    assert not canary.exists()
    _only(tmp_path)


@pytest.mark.parametrize("name, payload, names", CORPUS, ids=IDS)
def test_audit_entry_points_refuse(tmp_path, canary, name, payload, names):
    text = _arm(payload, canary)
    with pytest.raises(InputError, match="formula") as exc:
        parse_formula(text)
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError) as exc:
        load_rule(text)
    assert "\n" not in str(exc.value)
    assert not canary.exists()
    _only(tmp_path)


def _toml_string(s: str) -> str:
    """A TOML basic string holding ``s`` exactly (control characters escaped)."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_refusal(code: int, out: str, err: str) -> None:
    assert code == 2 and out == ""
    assert err.startswith("margin-design: error: ") and err.count("\n") == 1 and err.endswith("\n")
    assert "Traceback" not in err


@pytest.mark.parametrize("name, payload, names", CORPUS, ids=IDS)
def test_toml_rule_file_refuses(tmp_path, canary, capsys, name, payload, names):
    text = _arm(payload, canary)
    rule = tmp_path / "rule.toml"
    rule.write_text(f"[rule]\nformula = {_toml_string(text)}\nname = \"attempt\"\n", encoding="utf-8")
    assert tomllib.loads(rule.read_text(encoding="utf-8"))["rule"]["formula"] == text   # the file holds the payload exactly
    with pytest.raises(InputError, match=r"^rule\.formula in rule\.toml: formula ") as exc:
        load_rule(str(rule))
    assert names in str(exc.value) and "\n" not in str(exc.value)
    # and through the command line, with a market config that does not exist: the formula is refused first
    code, out, err = _run_cli(capsys, "audit", rule, "--market", tmp_path / "no-such-market.toml", "--no-simulation", "--out", tmp_path / "out")
    _assert_one_line_refusal(code, out, err)
    assert "rule.formula in rule.toml" in err and "no-such-market" not in err
    assert not canary.exists()
    _only(tmp_path, "rule.toml")


@pytest.mark.parametrize("name, payload, names", CORPUS, ids=IDS)
def test_cli_refuses_before_reading_the_market(tmp_path, canary, capsys, name, payload, names):
    text = _arm(payload, canary)
    code, out, err = _run_cli(capsys, "audit", text, "--market", tmp_path / "no-such-market.toml", "--no-simulation", "--out", tmp_path / "out")
    _assert_one_line_refusal(code, out, err)
    assert "no-such-market" not in err and ("formula" in err or "rule" in err)
    assert not canary.exists()
    _only(tmp_path)


def _console_script() -> Path:
    script = Path(sys.executable).parent / "margin-design"
    if not script.exists():  # pragma: no cover - the test environment installs the package (make install)
        pytest.skip("the margin-design console script is not installed next to this Python")
    return script


def test_console_script_refuses_the_reported_exploit(tmp_path):
    """The command of the security report, run for real: no file 'pwned', exit 2, one line on stderr, no output folder."""
    exploit = "sqrt.__globals__['__builtins__']['__import__']('os').system('touch pwned') + r"
    proc = subprocess.run(
        [str(_console_script()), "audit", exploit, "--market", str(EXAMPLES / "benchmark.toml"), "--no-simulation", "--out", "X"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    _assert_one_line_refusal(proc.returncode, proc.stdout, proc.stderr)
    assert "attribute access (.__globals__)" in proc.stderr
    _only(tmp_path)


def test_console_script_refuses_a_toml_payload(tmp_path):
    canary = tmp_path / "canary"
    rule = tmp_path / "rule.toml"
    rule.write_text(f"[rule]\nformula = {_toml_string(_arm(CORPUS[1][1], canary))}\n", encoding="utf-8")
    proc = subprocess.run(
        [str(_console_script()), "audit", "rule.toml", "--market", "missing.toml", "--no-simulation"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONBREAKPOINT": "0"},
    )
    _assert_one_line_refusal(proc.returncode, proc.stdout, proc.stderr)
    assert "unknown function __import__()" in proc.stderr
    assert not canary.exists()
    _only(tmp_path, "rule.toml")


# ----------------------------------------------------------------------------------------------
# Accepted formulas: the same sympy expressions as before, built here by hand
# ----------------------------------------------------------------------------------------------

FL = sp.Float   # sympy's Float of the literal's digits, which is how the previous sympy parser read a decimal

VALID = [
    # text, expression in r built by hand, variable, numpy of the same formula (sigma = daily vol)
    ("2.326*sqrt(2*r)", FL("2.326") * sp.sqrt(2 * R), "r", lambda s: 2.326 * np.sqrt(2 * s**2)),
    ("0.01 + 2*sigma", FL("0.01") + 2 * S, "sigma", lambda s: 0.01 + 2 * s),
    ("0.01 +\n  2*sigma", FL("0.01") + 2 * S, "sigma", lambda s: 0.01 + 2 * s),            # a multi-line TOML string
    ("Max(0.02, 3*sigma)", sp.Max(FL("0.02"), 3 * S), "sigma", lambda s: np.maximum(0.02, 3 * s)),
    ("max(0.02, 3*sigma)", sp.Max(FL("0.02"), 3 * S), "sigma", lambda s: np.maximum(0.02, 3 * s)),
    ("min(0.2, 2.5*sigma, 100*r)", sp.Min(FL("0.2"), FL("2.5") * S, 100 * R), "r", lambda s: np.minimum(np.minimum(0.2, 2.5 * s), 100 * s**2)),
    ("Min(0.2, 3*sigma)", sp.Min(FL("0.2"), 3 * S), "sigma", lambda s: np.minimum(0.2, 3 * s)),
    ("Heaviside(sigma - 0.02)*0.01 + 0.03", sp.Heaviside(S - FL("0.02")) * FL("0.01") + FL("0.03"), "sigma",
     lambda s: np.where(s > 0.02, 0.04, 0.03)),
    ("floor(100*sigma)/100 + 0.01", sp.floor(100 * S) / 100 + FL("0.01"), "sigma", lambda s: np.floor(100 * s) / 100 + 0.01),
    ("ceiling(200*sigma)/200", sp.ceiling(200 * S) / 200, "sigma", lambda s: np.ceil(200 * s) / 200),
    ("ceil(200*sigma)/200", sp.ceiling(200 * S) / 200, "sigma", lambda s: np.ceil(200 * s) / 200),
    ("r^0.5", R ** FL("0.5"), "r", lambda s: s),
    ("2*r^2 + 3*sigma", 2 * R**2 + 3 * S, "r", lambda s: 2 * s**4 + 3 * s),              # ^ binds like ** (not like Python's xor)
    ("2^3^2*r", 512 * R, "r", lambda s: 512 * s**2),                                       # right-associative, as **
    ("abs(sigma - 0.01) + Abs(r)", sp.Abs(S - FL("0.01")) + R, "r", lambda s: np.abs(s - 0.01) + s**2),
    ("exp(-r)*log(1 + r) + sigma", sp.exp(-R) * sp.log(1 + R) + S, "r", lambda s: np.exp(-s**2) * np.log1p(s**2) + s),
    ("log(r, 10) + 10", sp.log(R, 10) + 10, "r", lambda s: np.log10(s**2) + 10),
    ("pi*r + e*sigma", sp.pi * R + sp.E * S, "r", lambda s: math.pi * s**2 + math.e * s),
    ("1/2*r", sp.Rational(1, 2) * R, "r", lambda s: 0.5 * s**2),                           # exact, as before
    ("-sigma + +2*sigma", S, "sigma", lambda s: s),
    ("0.1234567890123456789*r", FL("0.1234567890123456789") * R, "r", lambda s: 0.1234567890123456789 * s**2),
    ("1_000.5e-6*sigma + 2E-3", FL("1000.5e-6") * S + FL("2E-3"), "sigma", lambda s: 1000.5e-6 * s + 2e-3),
    ("sqrt(r)**2 + (r + 1)**100 - 1", R + (R + 1) ** 100 - 1, "r", lambda s: s**2 + (s**2 + 1) ** 100 - 1),
]


@pytest.mark.parametrize("text, expected, variable, numeric", VALID, ids=[v[0] for v in VALID])
def test_valid_formulas_parse_to_the_expected_expression(text, expected, variable, numeric):
    f = F.parse_formula_expr(text)
    assert f.expr == expected and sp.srepr(f.expr) == sp.srepr(expected)   # same tree, same Float precisions
    assert f.variable == variable and f.text == text.strip().replace("\n", " ")   # one line, for messages
    rule = parse_formula(text)
    assert isinstance(rule, FormulaRule) and rule.expr == expected and rule.variable == variable
    # the audit evaluates it to what numpy gives for the same formula (off the steps of Heaviside / floor / ceiling)
    np.testing.assert_allclose(rule.evaluate(VOLS**2)[0], numeric(VOLS), rtol=EVAL_RTOL, atol=0)


def test_slopes_of_valid_formulas():
    """dM/dr by hand: d(2.326 sqrt(2r))/dr = 2.326 sqrt(2) / (2 sqrt r); flat between steps; Max switches branch."""
    r = VOLS**2
    np.testing.assert_allclose(parse_formula("2.326*sqrt(2*r)").evaluate(r)[1], 2.326 * math.sqrt(2) / (2 * VOLS), rtol=EVAL_RTOL)
    assert np.all(parse_formula("floor(100*sigma)/100 + 0.01").evaluate(r)[1] == 0)
    assert np.all(parse_formula("Heaviside(sigma - 0.02)*0.01 + 0.03").evaluate(r)[1] == 0)
    d = parse_formula("max(0.02, 3*sigma)").evaluate(r)[1]
    np.testing.assert_allclose(d, np.where(3 * VOLS > 0.02, 3 / (2 * VOLS), 0.0), rtol=EVAL_RTOL)


def test_a_sum_of_floors_has_a_slope():
    """Sums of floor steps used to crash sympy's sort when Subs(Derivative(floor)) was replaced after differentiating."""
    text = " + ".join(f"floor({k}*sigma*100)/{k * 100}" for k in range(1, 8))
    rule = load_rule(text)
    assert np.all(rule.slope(VOLS**2) == 0)
    assert rule.discontinuities(0.005, 0.03)


# ----------------------------------------------------------------------------------------------
# Not real, not finite
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, match",
    [
        ("sqrt(-r)", "is not real"),              # sympy: I*sqrt(r); the old path kept its real part, 0
        ("log(-r)", "is not real"),
        ("(-r)**0.5", "is not real"),
        ("(-r)**(1/3) + r", "is not real"),
        ("sqrt(-1) + r", "is not real"),
        ("1/(r - r)", "is not finite"),
        ("log(0) + r", "is not finite"),
        ("r/0", "is not finite"),
        ("log(r, 1)", "is not finite"),
    ],
)
def test_non_real_or_non_finite_expressions_are_refused(text, match):
    with pytest.raises(InputError, match=match) as exc:
        F.parse_formula_expr(text)
    assert str(exc.value).startswith(f"formula {text!r} ") and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "text, vol",
    [
        ("sqrt(r - 0.0001)", 0.005),     # NaN below daily vol 1%
        ("log(r - 0.0004) + 1", 0.005),  # NaN below 2%, -inf at it
        ("log(floor(100*sigma))", 0.005),  # -inf below 1% (a non-smooth formula, read just right of each r)
        ("exp(exp(exp(1/r)))", 0.005),   # overflow
    ],
)
def test_values_not_real_and_finite_on_the_grid_are_refused_naming_the_vol(text, vol):
    rule = load_rule(text)
    grid = np.linspace(0.005, 0.03, 26)      # 0.005, 0.006, ..., 0.03
    with pytest.raises(InputError) as exc:
        rule.check_monotone(grid)
    msg = str(exc.value)
    assert msg.startswith(f"formula {text!r} has the value ") and f"at daily vol {vol:.6g};" in msg and "\n" not in msg


def test_the_domain_is_r_positive():
    """r = 0 is outside a formula's domain (callers evaluate it only where they mask the result): no refusal there."""
    rule = load_rule("0.2 + 0.01*log(r)")
    m = rule.margin(np.array([0.0, 1e-4]))
    assert m[0] == -np.inf and m[1] == pytest.approx(0.2 + 0.01 * math.log(1e-4), rel=EVAL_RTOL)
    with pytest.raises(InputError, match=f"has the value inf at daily vol {math.sqrt(1e-310):.6g};"):
        load_rule("1/r").margin(np.array([1e-310]))      # a positive r is in the domain: 1/r = inf there is refused


def test_complex_values_are_refused_not_truncated():
    """A FormulaRule built in Python around a complex expression: its value is refused, not cut to its real part."""
    rule = FormulaRule(text="I*r + r", expr=sp.I * R + R, derivative=sp.I + 1)
    with pytest.raises(InputError, match=r"^formula 'I\*r \+ r' has the complex value .* at daily vol 0\.01; a margin formula must be real\.$"):
        rule.evaluate(np.array([1e-4, 4e-4]))


def test_cli_refuses_a_formula_not_real_on_the_grid(write_config, capsys):
    market = write_config(BASE_CONFIG, "market.toml")   # daily vol grid 0.005 .. 0.03
    code, out, err = _run_cli(capsys, "audit", "sqrt(r - 0.0001)", "--market", market, "--no-simulation")
    _assert_one_line_refusal(code, out, err)
    assert "at daily vol 0.005" in err
    code, out, err = _run_cli(capsys, "audit", "sqrt(-r) + 2*sigma", "--market", market, "--no-simulation")
    _assert_one_line_refusal(code, out, err)
    assert "is not real" in err


# ----------------------------------------------------------------------------------------------
# Limits
# ----------------------------------------------------------------------------------------------


def test_length_limit():
    at_limit = "r" + " " * (F.MAX_LENGTH - 1)
    assert F.parse_formula_expr(at_limit).expr == R
    with pytest.raises(InputError, match=f"has {F.MAX_LENGTH + 1} characters, more than the limit of {F.MAX_LENGTH}"):
        F.parse_formula_expr(at_limit + " ")


def test_depth_limit():
    """Unary signs nest; a long chain of + or * is one level (a step schedule is a long sum of Heavisides)."""
    assert F.parse_formula_expr("-" * (F.MAX_DEPTH - 1) + "r").expr == -R      # depth MAX_DEPTH (odd count of -)
    with pytest.raises(InputError, match=f"nested more than {F.MAX_DEPTH} levels"):
        F.parse_formula_expr("-" * F.MAX_DEPTH + "r")
    with pytest.raises(InputError, match=f"nested more than {F.MAX_DEPTH} levels"):
        F.parse_formula_expr("sqrt(" * F.MAX_DEPTH + "r" + ")" * F.MAX_DEPTH)
    assert F.parse_formula_expr("+".join(["sigma"] * (F.MAX_DEPTH + 5))).expr == (F.MAX_DEPTH + 5) * S
    assert F.parse_formula_expr("*".join(["2"] * (F.MAX_DEPTH + 5) + ["r"])).expr == 2 ** (F.MAX_DEPTH + 5) * R


def test_size_limit():
    n = (F.MAX_NODES - 1) // 2            # r+r+...+r: n additions and n + 1 names
    assert F.parse_formula_expr("r+" * n + "r").expr == (n + 1) * R
    with pytest.raises(InputError, match=f"more than {F.MAX_NODES} elements"):
        F.parse_formula_expr("r+" * (n + 1) + "r")


def test_min_max_arity():
    args = ", ".join(f"{k}*sigma" for k in range(1, F.MAX_MINMAX_ARGS + 2))
    with pytest.raises(InputError, match=f"calls max with {F.MAX_MINMAX_ARGS + 1} arguments; max takes 2 to {F.MAX_MINMAX_ARGS}"):
        F.parse_formula_expr(f"max({args})")
    with pytest.raises(InputError, match="calls sqrt with 2 arguments; sqrt takes exactly 1"):
        F.parse_formula_expr("sqrt(r, 2)")
    with pytest.raises(InputError, match="calls Min with 1 argument; Min takes 2 to"):
        F.parse_formula_expr("Min(r)")


@pytest.mark.parametrize(
    "text, match",
    [
        ("r**100", None),
        ("r**-100", None),
        ("2**100*r", None),
        ("(2**100)**10*r", None),                       # 2**1000 < 1.8e308
        ("r**101", "beyond the limit |p| <= 100"),
        ("r**-101", "beyond the limit |p| <= 100"),
        ("r^1000", "beyond the limit |p| <= 100"),
        ("9**9**9", "raises to the power 387420489"),
        ("10**10**10", "raises to the power 10000000000"),
        ("2**10**6 * r", "raises to the power 1000000"),
        ("(r+1)**1000000", "raises to the power 1000000"),
        ("(r+1)**(10**3)", "raises to the power 1000,"),
        ("r**(9**9**9)", "raises to the power 387420489"),
        ("(10**50*r)**100", "needs exact numbers of more than 4096 bits"),
        ("(2**100)**11*r", "beyond the float range"),
        ("1e400*r", "beyond the float range"),
        ("1" + "0" * 400 + "*r", "beyond the float range"),
        ("(2**100)**10*2**100*r", "beyond the float range"),
        ("floor(exp(exp(100)))*r", "beyond the float range"),
        ("exp(10**300)*r", "raises to the power 300"),
    ],
)
def test_exponent_and_number_limits(text, match):
    if match is None:
        assert F.parse_formula_expr(text).expr.free_symbols == {R}
    else:
        with pytest.raises(InputError, match=re.escape(match)):
            F.parse_formula_expr(text)


@pytest.mark.parametrize(
    "text",
    [
        "r" * 10_000_000,                                   # 10 MB
        "(" * 100_000 + "r" + ")" * 100_000,
        "(" * 999,
        "[" * 999,
        "-" * 999 + "r",
        "not " * 249 + "r",
        "9**9**9**9**9**9",
        "(r+1)**(2**2**2**2**2)",
        "floor(exp(exp(100)))",
        "Heaviside(exp(700) - floor(exp(700)) - 1) + r",
        "\x00" * 5000,
        "ｒ" * 2000,
    ],
    ids=["10MB", "parens-100k", "open-parens", "open-brackets", "unary-999", "not-249", "tower", "pow-tower", "floor-exp-exp",
         "precision", "nul-5000", "fullwidth-2000"],
)
def test_pathological_inputs_are_refused(text):
    """Refused, not timed: each of these would run for minutes or exhaust memory if parsed or evaluated naively."""
    with pytest.raises(InputError) as exc:
        F.parse_formula_expr(text)
    assert len(str(exc.value)) < 700 and "\n" not in str(exc.value)


def test_non_text_is_refused():
    with pytest.raises(InputError, match="must be text"):
        F.parse_formula_expr(0.05)
    with pytest.raises(InputError, match="is empty"):
        F.parse_formula_expr(" \n\t ")


# ----------------------------------------------------------------------------------------------
# load_rule: a formula is never read as a path
# ----------------------------------------------------------------------------------------------


def test_a_formula_longer_than_a_file_name_is_a_formula():
    text = "0.01 + 2*sigma" + " + 0*r" * 50            # > 255 characters: Path.exists used to raise OSError
    assert len(text) > 255
    rule = load_rule(text)
    assert rule.base.expr == FL("0.01") + 2 * S


def test_a_formula_is_not_a_file_even_if_one_has_its_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r").write_text("vol,margin\n0.01,0.03\n0.02,0.05\n")
    rule = load_rule("r")
    assert isinstance(rule.base, FormulaRule) and rule.base.expr == R


def test_missing_rule_files_say_so(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_rule(str(tmp_path / "missing.toml"))
    with pytest.raises(InputError, match="does not exist"):
        load_rule(str(tmp_path / "missing.csv"))
    with pytest.raises(InputError, match="cannot be read"):
        load_rule("x" * 300 + ".csv")                 # too long for a file name: an InputError, not OSError
    with pytest.raises(InputError, match="does not exist"):
        load_rule(str(tmp_path / "missing.json"))
    with pytest.raises(InputError, match="must be a .csv or .json table, a .toml rule file, a report or solve folder, or a formula"):
        load_rule("rule.xlsx")


# ----------------------------------------------------------------------------------------------
# The whitelist is documented where users look
# ----------------------------------------------------------------------------------------------


def test_whitelist_is_documented(capsys):
    assert cli_main(["audit", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in F.FUNCTION_NAMES + F.CONSTANT_NAMES:
        assert name in help_text, name
        assert f"``{name}" in F.__doc__, name
        assert name in readme, name
    assert "margin_design.formula" in readme and "** (or ^)" in help_text


def test_no_code_evaluation_of_formula_text_in_the_package():
    """The parser and the audit's rule loader call no eval/exec/compile/__import__ and no sympify/parse_expr."""
    for path in (ROOT / "margin_design" / "formula.py", ROOT / "audit" / "rules.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = [n.func for n in ast.walk(tree) if isinstance(n, ast.Call)]
        names = {f.id for f in calls if isinstance(f, ast.Name)}
        attrs = {f.attr for f in calls if isinstance(f, ast.Attribute)}
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not names & {"eval", "exec", "compile", "__import__", "sympify", "parse_expr"}, path
        assert not attrs & {"sympify", "parse_expr"}, path
        assert not any(m and m.startswith("sympy.parsing") for m in modules), path
