"""The same table as markdown, LaTeX and HTML."""

from __future__ import annotations

from fixed_results import seed_like_results


def test_markdown_has_the_rows_and_factor_levels():
    text = seed_like_results().summary().as_markdown()
    lines = text.splitlines()
    assert lines[0] == "**Mixed-effects logistic regression**"
    header = "| topq | Coef. | Std. Err. | z | P>\\|z\\| | [95% Conf. | Interval] |"
    assert header.replace("\\|", "|") in [line.replace("\\|", "|") for line in lines]
    assert "| nauthors | .0729849 | .0013875 | 52.60 | 0.000 | .0702654 | .0757044 |" in lines
    assert "|   Female | -.2309206 | .0204889 | -11.27 | 0.000 | -.2710781 | -.1907631 |" in lines
    assert any(line.startswith("| var(_cons) | .5333601 | .0119995 |") for line in lines)


def test_latex_escapes_and_rules():
    text = seed_like_results().summary().as_latex()
    assert text.startswith("\\begin{tabular}{lrrrrrr}")
    assert "\\_cons & -3.993144 & .0237151 & -168.38 & 0.000" in text
    assert text.count("\\hline") == 4  # top, under the header, between the two blocks, bottom
    assert text.rstrip().endswith("\\end{tabular}")


def test_html_table():
    text = seed_like_results().summary().as_html()
    assert text.startswith('<table class="mixedglm"><caption>Mixed-effects logistic regression')
    assert "<td>nauthors</td><td>.0729849</td>" in text
    assert text.endswith("</tbody></table>")
