"""``--plot PATH`` on the command line: the caterpillar (fit) and within/between (hybrid)."""

from __future__ import annotations

import numpy as np
from matplotlib.image import imread

from mixedglm.cli import main


def _image(path) -> np.ndarray:
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert np.mean(np.any(image[..., :3] < 0.95, axis=-1)) > 0.01  # not blank
    return image


def test_fit_and_hybrid_write_their_plots(panel, tmp_path, capsys):
    csv = tmp_path / "panel.csv"
    panel.to_csv(csv, index=False)
    re_png, wb_png = tmp_path / "re.png", tmp_path / "wb.png"
    assert main(["fit", str(csv), "y ~ x + (1 + x || g)", "--nolog", "--plot", str(re_png)]) == 0
    image = _image(re_png)
    assert image.shape[1] > image.shape[0]  # two panels side by side
    args = ["hybrid", str(csv), "y ~ f", "--use", "x", "t", "--cluster", "g"]
    assert main([*args, "--family", "binomial", "--plot", str(wb_png)]) == 0
    _image(wb_png)
    assert "W__x" in capsys.readouterr().out


def test_a_plot_that_cannot_be_written_is_one_line_of_error(panel, tmp_path, capsys):
    csv = tmp_path / "panel.csv"
    panel.to_csv(csv, index=False)
    bad = tmp_path / "re.unknownformat"
    assert main(["fit", str(csv), "y ~ x + (1 | g)", "--nolog", "--plot", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mixedglm: error: cannot write the plot") and err.count("\n") == 1
