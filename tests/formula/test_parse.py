"""parse_formula: the response, the fixed part handed to formulaic, random-effect terms with
``|`` and ``||``, and errors that say where the formula fails."""

from __future__ import annotations

import pytest

from mixedglm.errors import FormulaError, MixedGLMError
from mixedglm.formula import ParsedFormula, RandomTerm, parse_formula


def test_fixed_terms_and_one_random_intercept():
    parsed = parse_formula("y ~ x1 + C(region) + (1 | school)")
    assert parsed == ParsedFormula(
        text="y ~ x1 + C(region) + (1 | school)",
        response="y",
        fixed="x1 + C(region)",
        random=(RandomTerm("(1 | school)", "1", "school", True),),
    )
    assert parsed.groups == ("school",)


def test_double_bar_means_independent_effects():
    (term,) = parse_formula("y ~ x + (1 + x || g)").random
    assert term == RandomTerm("(1 + x || g)", "1 + x", "g", False)
    (term,) = parse_formula("y ~ x + (1 + x | g)").random
    assert term.correlated and term.expr == "1 + x" and term.group == "g"


def test_several_random_terms_keep_their_order_and_groups_are_unique():
    parsed = parse_formula("y ~ x + (1 | g) + (0 + x | g) + (1 | h)")
    assert [t.text for t in parsed.random] == ["(1 | g)", "(0 + x | g)", "(1 | h)"]
    assert [t.expr for t in parsed.random] == ["1", "0 + x", "1"]
    assert parsed.groups == ("g", "h")
    assert parsed.fixed == "x"


def test_random_terms_anywhere_on_the_right_hand_side():
    parsed = parse_formula("y ~ (1 | g) + x1 + x2")
    assert parsed.fixed == "x1 + x2"
    assert parsed.random[0].group == "g"


def test_whitespace_is_normalised():
    parsed = parse_formula("  y~x1+   x2 +(1|g)  ")
    assert parsed.text == "y~x1+ x2 +(1|g)"
    assert (parsed.response, parsed.fixed) == ("y", "x1 + x2")
    assert parsed.random[0] == RandomTerm("(1|g)", "1", "g", True)


def test_no_fixed_terms_means_a_constant_only():
    parsed = parse_formula("y ~ (1 | g)")
    assert parsed.fixed == "1"
    assert parse_formula("y ~ 1").fixed == "1"


def test_minus_terms_and_functions_stay_with_their_sign():
    parsed = parse_formula("y ~ x1 - 1 + np.log(x2) + C(f, Treatment(2)) + (1 | g)")
    assert parsed.fixed == "x1 - 1 + np.log(x2) + C(f, Treatment(2))"
    parsed = parse_formula("y ~ 0 + x")
    assert parsed.fixed == "0 + x"


def test_plus_inside_brackets_and_calls_does_not_split():
    parsed = parse_formula("y ~ I(x1 + x2) + x3[a+b] + (1 + x1 | g)")
    assert parsed.fixed == "I(x1 + x2) + x3[a+b]"
    assert parsed.random[0].expr == "1 + x1"


def test_grouping_names_with_dots_and_underscores():
    assert parse_formula("y ~ x + (1 | my.group_2)").groups == ("my.group_2",)


def test_parentheses_without_a_bar_are_fixed_terms():
    parsed = parse_formula("y ~ (x1 + x2) + (1 | g)")
    assert parsed.fixed == "(x1 + x2)"
    assert len(parsed.random) == 1


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("", "the formula is empty"),
        ("   ", "the formula is empty"),
        ("y x1 x2", "exactly one '~'"),
        ("y ~ x ~ z", "exactly one '~'"),
        ("~ x", "no outcome before '~'"),
        ("y ~ ", "nothing after '~'"),
        ("y ~ x + (1 | g", r"'\(' that is never closed"),
        ("y ~ x + 1 | g)", r"'\)' without a matching '\('"),
        ("y ~ x + + z", "operator without a term"),
        ("y ~ x +", "operator without a term"),
        ("y ~ x + ( | g)", "has nothing before '\\|'"),
        ("y ~ x + (1 | )", "names no grouping variable"),
        ("y ~ x + (1 || )", "names no grouping variable"),
        ("y ~ x + (1 | g+h)", "'g\\+h' is not a column name"),
        ("y ~ x + (1 | g*h)", "an interaction a:b, or a nesting a/b"),
    ],
)
def test_errors_name_the_problem(formula, message):
    with pytest.raises(FormulaError, match=message):
        parse_formula(formula)


def test_errors_point_at_the_place():
    with pytest.raises(FormulaError) as err:
        parse_formula("y ~ x + 1 | g)")
    text, caret = str(err.value).splitlines()[-2:]
    assert text == "y ~ x + 1 | g)"
    assert caret == " " * text.index(")") + "^"
    with pytest.raises(FormulaError) as err:
        parse_formula("y ~ x ~ z")
    text, caret = str(err.value).splitlines()[-2:]
    assert caret.index("^") == 6  # the second '~'


def test_not_a_string_is_a_formula_error():
    with pytest.raises(MixedGLMError, match="empty"):
        parse_formula(None)  # type: ignore[arg-type]
