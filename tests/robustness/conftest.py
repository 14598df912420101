"""Small data files for the robustness suite: one good data set and one of each kind of
bad input (written once per session)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def base_frame(n_groups: int = 30, size: int = 10, seed: int = 1) -> pd.DataFrame:
    """A binary outcome in ``n_groups`` clusters, covariates x and x2, a count, a sample flag
    and a three-level factor f."""
    rng = np.random.default_rng(seed)
    n = n_groups * size
    g = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=n)
    u = rng.normal(size=n_groups)[g]
    y = rng.binomial(1, 1 / (1 + np.exp(-(0.5 * x + u))))
    return pd.DataFrame(
        {
            "y": y,
            "x": x,
            "x2": rng.normal(size=n),
            "g": g,
            "count": rng.poisson(np.exp(0.3 + 0.2 * x + 0.3 * u)),
            "sample": rng.integers(0, 2, n),
            "f": np.array(["a", "b", "c"])[rng.integers(0, 3, n)],
            "yc": 1.0 + 0.5 * x + u + rng.normal(size=n),
        }
    )


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    return base_frame()


@pytest.fixture(scope="session")
def files(tmp_path_factory, frame) -> dict[str, Path]:
    """Paths of the data files by name."""
    root = tmp_path_factory.mktemp("robust_data")
    out: dict[str, Path] = {}

    def csv(name: str, data: pd.DataFrame, **kw) -> None:
        out[name] = root / f"{name}.csv"
        data.to_csv(out[name], index=False, **kw)

    csv("good", frame)
    csv("inf", frame.assign(x=frame["x"].where(frame.index != 3, np.inf)))
    csv("huge", frame.assign(x=frame["x"].where(frame.index > 5, 1e300)))
    csv("header", frame.head(0))
    csv("semicolon", frame, sep=";")
    dots = frame.astype({"x2": object})
    dots.loc[[4, 7], "x2"] = "."
    csv("stata_dots", dots)
    text = frame.astype({"x2": object})
    text.loc[[5], "x2"] = "n/a?"
    csv("text_in_numbers", text)
    csv("all_y_one", frame.assign(y=1))
    csv("one_group", frame.assign(g=1))
    csv("const_slope", frame.assign(x2=frame["g"] * 1.0))
    out["empty"] = root / "empty.csv"
    out["empty"].write_text("")
    out["binary"] = root / "binary.csv"
    out["binary"].write_bytes(bytes(range(256)) * 4)
    out["unknown_ext"] = root / "data.xyz"
    out["unknown_ext"].write_text("y,x\n1,2\n")
    out["dir"] = root / "a_directory"
    out["dir"].mkdir()
    out["not_json"] = root / "not_results.json"
    out["not_json"].write_text("{not json")
    out["json_list"] = root / "list.json"
    out["json_list"].write_text("[1, 2, 3]")
    return out
