"""The paper every document cites, and what each of its equation numbers means in words.

Every document the project writes (``report.md``, ``report.html``, ``report.tex``/``report_body.tex``/``report.pdf``,
``audit.md``/``audit.html``) ends with the full reference and a glossary of the equation numbers it mentions, built
by :func:`equation_numbers` from the document's own text, so a reader never meets a bare "(40)".

Source: ``reference/000_7727c37bac413c39.txt`` (title page: Francesco Nicolai, BI Norwegian Business School,
"March 2026 - Latest Version", "July 2024 - First Version"); the meanings paraphrase the equations as numbered there.
"""

from __future__ import annotations

import re

AUTHOR = "Francesco Nicolai"
TITLE = "An Impossibility Theorem for Price-Based Risk Constraints"
INSTITUTION = "BI Norwegian Business School"
VERSION = "working paper, March 2026 version (first version July 2024)"

#: The full reference as plain text (no URL: the documents carry no network reference).
CITATION = f'{AUTHOR} (2026), "{TITLE}", {VERSION}, {INSTITUTION}.'

#: Equation number of Nicolai (2026) -> what it says, in words (units as the documents use them).
EQUATIONS: dict[int, str] = {
    1: 'the unaffected (fundamental) price is a martingale',
    2: 'the transaction price: fundamental value plus price impact alpha times net order flow',
    3: "the rule: next period's margin is a function g of the measured risk input, M = g(Gamma)",
    4: 'the risk input: realised variance of the sampled prices over the window',
    5: "a constrained trader's margin constraint: position times margin within its equity",
    6: "a constrained trader's position: its target, cut back to what its equity supports at the margin",
    7: 'aggregate constrained position X(M) at margin M',
    8: 'c_X: forced sales per unit rise in margin, the slope of the constrained position in M',
    9: 'a round trip ends flat: the trades sum to zero',
    10: 'the trading profit of a round trip',
    11: 'round-trip profit net of the inventory penalty kappa',
    12: 'the funding constraint of the manipulating trader',
    13: 'how a trade of q ADV moves realised variance through the last sampled return',
    14: 'the amplification G = alpha c_X c_g c_Gamma of a trigger trade through the rule',
    15: "Lemma 5's lower bound on the expected profit of the trigger-and-reverse round trip",
    16: 'the slope cap at a state: largest rule slope dM/dr without a profitable round trip (Corollary 1)',
    17: 'the same cap in its envelope form, with the last return at its largest, in terms of r',
    18: 'the same cap in daily-vol units, on dM/dsigma',
    19: 'the transaction price in the continuous-trading version of the model',
    20: 'realised variance in the continuous-trading version',
    21: 'the margin update in the continuous-trading version',
    22: 'the trimmed variance: squared returns above a cutoff c are dropped (Proposition 2)',
    23: 'portfolio prices: fundamental values plus the cross-impact matrix A times the trade vector',
    24: 'the trading profit of a portfolio round trip',
    25: 'the portfolio risk input and margin update',
    26: 'forced sales of a portfolio: the liquidation vector B times the rise in margin',
    27: 'the risk input rises at least at rate c_Gamma along the trigger direction d',
    28: 'lower bound on the expected profit of a portfolio round trip',
    29: "Theorem 3's portfolio amplification H_t; a positive H_t makes small round trips profitable",
    30: "the CCP's per-state cost: coverage loss, carrying cost, liquidation cost and participation loss",
    31: 'the per-state cost Psi(r, M; z), first line: expected coverage loss and carrying cost',
    32: 'the per-state cost Psi(r, M; z), second line: liquidation cost and participation loss',
    33: 'the expected cost J(g) of a rule, the per-state cost weighted by the state density',
    34: 'the first-best margin: the level that minimises the per-state cost state by state',
    35: 'the first-order condition of the first-best: marginal coverage benefit equals marginal cost',
    36: 'the marginal participation cost p(M)',
    37: 'the quantile closed form of the first-best, sqrt(r) times a quantile of the shock',
    38: "the manipulation-proof cap on the rule's slope dM/dr in terms of alpha, c_eff and the last return",
    39: 'the slope cap in variance units, dM/dr <= 1/(alpha * c_eff * sqrt(r))',
    40: 'the slope cap in daily-vol units, 0 <= dM/dsigma <= 2/(alpha * c_eff)',
    41: 'the design problem: minimise expected cost over monotone rules within the slope cap',
    42: 'a saturated segment: the rule rises at the cap, M = a + K sqrt(r)',
    43: 'a pooling segment: the flat level k at which the weighted marginal cost over the pooled states is zero',
    44: 'the cap as a relative margin change per annualised-vol point, from the elasticity inputs',
    45: "the same cap with the paper's benchmark numbers (2.80/tau per vol point)",
    46: 'the portfolio slope cap (same form as (88))',
    48: 'the last-return risk input rises at least at rate c_Gamma',
    55: 'forced sales are at least proportional to the margin rise',
    58: 'the profit bound with execution cost tau and funding spread rho; trades above q_min pay',
    59: "a strategic constrained trader's choice of its target position (Appendix B)",
    60: "the variance of next period's margin change",
    61: "the strategic trader's optimal target position",
    62: 'c_X^eff as the sensitivity of constrained positions to the margin',
    63: 'the equilibrium c_X^eff of strategic constrained traders',
    64: 'profit per notional in bp and return on margin in percent of a trigger trade',
    65: 'the price distortion of a trade of size f: about 200 sqrt(f) bp',
    66: 'forced liquidation as a fraction of positions: elasticity times the relative margin change',
    67: 'the amplification G in empirical units',
    68: 'the set of admissible rules: slope between zero and the cap',
    69: 'the Lagrangian of the design problem with multipliers on the cap and on monotonicity',
    70: "stationarity of the Lagrangian (the KKT condition on the rule's level)",
    71: 'complementary slackness of the cap multiplier',
    72: 'complementary slackness of the monotonicity multiplier',
    73: 'the cap on dM/dr for a price-return risk input',
    74: 'the slope cap in margin-ratio units per daily and per annualised vol point, dm/dsigma_ann <= K/sqrt(252)',
    75: 'price impact alpha from the price distortion delta of a trade of size f',
    76: 'c_eff from the elasticity of positions to margin, turnover and the margin level',
    77: 'the product alpha * c_eff in empirical units',
    78: 'the slope cap in empirical units',
    79: 'the slope cap per annualised vol point in empirical units',
    80: 'the relative slope cap (1/m) dm/dsigma in empirical units',
    81: 'the largest relative margin change for a vol move, from the elasticity inputs',
    82: "the same with the paper's benchmark numbers (2.80/tau per vol point)",
    83: 'the smallest vol move that allows a relative margin change eta_M',
    84: 'the smallest vol move after which a relative margin change of eta_M is allowed',
    85: 'the portfolio per-state cost Psi^P, first line: coverage loss and carrying cost',
    86: 'the portfolio per-state cost, second line: liquidation cost on the price pressure ||AB|| and participation loss',
    87: "the portfolio no-manipulation condition, with psi = max(0, -d'AB) the trigger-liquidation alignment",
    88: 'the portfolio slope cap, dM/dr <= 2/(c_r psi)',
    89: '||AB|| in the two-contract example of Appendix D.6',
    90: 'psi in the two-contract example of Appendix D.6',
    91: 'the portfolio-to-single-asset ratio of ||AB|| and psi in Appendix D.6',
    92: 'the portfolio cap relative to the single-asset cap in Appendix D.6',
    93: 'the largest relative margin change for a 10-vol-point move in Appendix D.6',
}

UNDESCRIBED = "equation ({n}) of the paper"

# "(40)", "(16)-(18)", "(68)--(72)", "(3), (34)": an equation number is 1-2 digits in parentheses.
_NUMBER = re.compile(r"(?<![\w\\])\((\d{1,2})\)")


def equation_numbers(text: str) -> list[int]:
    """The equation numbers a document mentions, sorted; a range "(16)-(18)" counts its two ends."""
    return sorted({int(m) for m in _NUMBER.findall(text)})


def glossary_rows(text: str) -> list[tuple[str, str]]:
    """(``"(n)"``, meaning) for each equation number ``text`` mentions; a number without words in :data:`EQUATIONS`
    is still listed ("equation (n) of the paper", :data:`UNDESCRIBED`; the tests require none in the documents)."""
    return [(f"({n})", EQUATIONS.get(n, UNDESCRIBED.format(n=n))) for n in equation_numbers(text)]


def markdown_references(text: str) -> str:
    """The closing sections of a Markdown document: the reference and the equations ``text`` mentions."""
    from margin_design.reports.table import markdown_table

    parts = ["\n\n## Reference\n\n", CITATION.replace("*", "\\*") + " Equation, section and table numbers refer to this paper.\n"]
    rows = glossary_rows(text)
    if rows:
        parts += ["\n## Equation numbers used\n\n", markdown_table(["Eq.", "What it says"], rows, [":---", ":---"])]
    return "".join(parts)


def latex_references(text: str) -> str:
    """The same closing sections for a LaTeX body (text escaped)."""
    from margin_design.reports.table import latex_escape, latex_tabular

    parts = [
        "\n\\subsection*{Reference}\n",
        f"{latex_escape(AUTHOR)} (2026), ``{latex_escape(TITLE)}'', {latex_escape(VERSION)}, {latex_escape(INSTITUTION)}. "
        "Equation, section and table numbers refer to this paper.\n",
    ]
    rows = glossary_rows(text)
    if rows:
        parts += ["\n\\subsection*{Equation numbers used}\n\\begin{center}\n\\small\n",
                  latex_tabular(["Eq.", "What it says"], rows, "lp{0.8\\linewidth}"), "\\end{center}\n"]
    return "".join(parts)
