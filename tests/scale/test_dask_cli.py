"""The command line on Dask: a directory of Parquet files, ``--dask --workers 1`` starts a
LocalCluster of one worker process and closes it; ``--scheduler`` connects to a running
cluster; the output, the JSON and the random effects equal the in-memory fit's; an
unreachable scheduler is one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mixedglm.cli import main
from scale_checks import parquet_parts, same_document, simulate_conditional

from refdata import REFERENCE

CONTRA = str(REFERENCE / "data" / "contraception.csv")
FORMULA = "c_use ~ urban + age + child1 + child2 + child3 + (1 | district)"


@pytest.mark.slow
def test_fit_parquet_directory_on_a_local_cluster(tmp_path, capsys):
    data = pd.read_csv(CONTRA).sample(frac=1.0, random_state=2)
    folder = tmp_path / "contra"
    folder.mkdir()
    for k in range(4):
        chunk = data.iloc[k::4]
        chunk.to_parquet(folder / f"part-{k}.parquet")
    common = [FORMULA, "--nagq", "5", "--nolog"]
    assert main(["fit", CONTRA, *common, "--json", str(tmp_path / "mem.json")]) == 0
    table_mem = capsys.readouterr().out
    args = ["fit", str(folder), *common, "--dask", "--workers", "1"]
    args += ["--json", str(tmp_path / "dask.json"), "--reffects", str(tmp_path / "re.csv")]
    assert main(args) == 0
    assert capsys.readouterr().out == table_mem
    mem = json.loads((tmp_path / "mem.json").read_text())
    dask_doc = json.loads((tmp_path / "dask.json").read_text())
    assert (dask_doc["engine"], dask_doc["partitions"], dask_doc["workers"]) == ("dask", 4, 1)
    for a, b in zip(dask_doc["coef"], mem["coef"], strict=True):
        assert a["estimate"] == pytest.approx(b["estimate"], rel=1e-7)
        assert a["se"] == pytest.approx(b["se"], rel=1e-7)
    assert dask_doc["loglik"] == pytest.approx(mem["loglik"], abs=1e-5)
    effects = pd.read_csv(tmp_path / "re.csv", index_col=0).sort_index()
    assert effects.shape == (60, 2)
    assert list(effects.columns) == ["_cons", "se(_cons)"]


def test_unreachable_scheduler_is_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.setattr("mixedglm.scale.session.CONNECT_TIMEOUT", "2s")
    code = main(["fit", CONTRA, FORMULA, "--scheduler", "tcp://127.0.0.1:9", "--nolog"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot connect to the Dask scheduler at 'tcp://127.0.0.1:9'" in err
    assert len(err.strip().splitlines()) == 1


def test_xtpoisson_on_a_parquet_directory_with_a_scheduler(client, tmp_path, capsys):
    whole, folder = parquet_parts(simulate_conditional("poisson", seed=4), tmp_path)
    common = ["y ~ x1 + x2 + C(region)", "--group", "g", "--exposure", "expo", "--irr"]
    mem_json, dask_json = str(tmp_path / "mem.json"), str(tmp_path / "dask.json")
    assert main(["xtpoisson", whole, *common, "--json", mem_json]) == 0
    out_mem = capsys.readouterr().out
    address = client.scheduler.address
    args = ["xtpoisson", folder, *common, "--dask", "--scheduler", address]
    args += ["--json", dask_json]
    assert main(args) == 0
    assert capsys.readouterr().out == out_mem  # notes, iteration log and table
    mine = json.loads(Path(dask_json).read_text())
    assert (mine["partitions"], mine["workers"]) == (3, 2)
    same_document(mine, json.loads(Path(mem_json).read_text()))
