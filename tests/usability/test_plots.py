"""The plots render (Agg, no display), with the panels, labels and data they promise."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.figure import Figure

import mixedglm as mg


def _pixels(fig: Figure) -> np.ndarray:
    """The rendered image as an (h, w, 4) array."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=60)
    buffer.seek(0)
    from matplotlib.image import imread

    return imread(buffer)


def _assert_drawn(fig: Figure) -> None:
    image = _pixels(fig)
    rgb = image[..., :3]
    non_white = np.mean(np.any(rgb < 0.95, axis=-1))
    assert 0.01 < non_white < 0.9, non_white  # something drawn, not a solid block
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 10  # several colours


@pytest.fixture(scope="module")
def slopes(panel):
    return mg.glmm("y ~ x + (1 + x || g)", panel, nolog=True, quiet=True)


@pytest.mark.slow
def test_caterpillar_one_panel_per_effect(logit_fit, slopes):
    fig = logit_fit.plot_random_effects()
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_title() == "g: _cons"
    assert "predicted random effect" in ax.get_xlabel()
    # the points are the posterior means, sorted
    x, _ = ax.lines[0].get_data()
    means = logit_fit.random_effects()["_cons"].to_numpy()
    np.testing.assert_allclose(x, np.sort(means))
    # the intervals are +-1.96 posterior SD
    seg = ax.collections[0].get_segments()
    se = logit_fit.random_effects().sort_values("_cons")["se(_cons)"].to_numpy()
    widths = np.array([s[1, 0] - s[0, 0] for s in seg])
    np.testing.assert_allclose(widths, 2 * 1.959963984540054 * se, rtol=1e-9)
    _assert_drawn(fig)
    fig = slopes.plot_random_effects(kind="modes")
    assert [a.get_title() for a in fig.axes] == ["g: x", "g: _cons"]
    _assert_drawn(fig)


def test_coefficient_plot(logit_fit):
    fig = logit_fit.plot_coefficients()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "C(f)[1]"]
    assert ax.get_xlabel() == "coefficient (95% confidence interval)"
    _assert_drawn(fig)
    fig = logit_fit.plot_coefficients(eform=True, level=90, drop=())
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "exp(coefficient) (90%" in ax.get_xlabel()
    x, _ = ax.lines[0].get_data()
    np.testing.assert_allclose(x, np.exp(logit_fit.params.to_numpy()))
    _assert_drawn(fig)


def test_hybrid_plot_within_and_between(panel):
    res = mg.hybrid("y ~ f", panel, use=["x", "t"], cluster="g", family="binomial")
    fig = res.plot()
    ax = fig.axes[0]
    assert [t.get_text().split("\n")[0] for t in ax.get_yticklabels()] == ["x", "t"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["within (W__)", "between (B__)"]
    within, _ = ax.lines[0].get_data()
    between, _ = ax.lines[1].get_data()
    np.testing.assert_allclose(within, res.params[["W__x", "W__t"]])
    np.testing.assert_allclose(between, res.params[["B__x", "B__t"]])
    _assert_drawn(fig)
    cre = mg.hybrid("y ~ f", panel, use=["x", "t"], cluster="g", family="binomial", cre=True)
    between_cre, _ = cre.plot().axes[0].lines[1].get_data()
    np.testing.assert_allclose(between_cre, between, rtol=1e-4)  # W + D = B
    assert len(res.plot_random_effects().axes) == 1


def test_plot_compare(logit_fit, panel):
    fe = mg.clogit("y ~ x + C(f)", panel, group="g", quiet=True)
    fig = mg.plot_compare([logit_fit, fe], ["RE", "FE"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["RE", "FE"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "C(f)[1]"]
    assert len(ax.lines) == 3  # two models and the reference line at 0
    x_re, _ = ax.lines[0].get_data()
    np.testing.assert_allclose(x_re, logit_fit.params[["x", "C(f)[1]"]])
    _assert_drawn(fig)
    with pytest.raises(mg.MixedGLMError, match="2 models but 1 names"):
        mg.plot_compare([logit_fit, fe], ["RE"])


def test_conditional_model_has_no_caterpillar(panel):
    fe = mg.clogit("y ~ x", panel, group="g", quiet=True)
    with pytest.raises(mg.MixedGLMError, match="no random effects"):
        fe.plot_random_effects()


def test_margins_plot(logit_fit):
    """One point and interval per marginal effect, at the margins' own numbers."""
    frame = logit_fit.margins(dydx="x")
    fig = logit_fit.plot_margins(dydx="x", title="AME")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_title() == "AME"
    x, _ = ax.lines[0].get_data()
    np.testing.assert_allclose(x, frame["estimate"].to_numpy())
    seg = ax.collections[0].get_segments()
    np.testing.assert_allclose([s[0, 0] for s in seg], frame["ci_low"].to_numpy())
    _assert_drawn(fig)
    with pytest.raises(mg.MixedGLMError, match="no rows"):
        mg.plot.plot_margins(frame.iloc[:0])
