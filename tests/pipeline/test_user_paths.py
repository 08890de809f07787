"""Paths a user gets wrong: an output folder that is an existing file, a run name that leaves the dataset,
a cluster that is not there. One line each, exit code 2, nothing written."""

from __future__ import annotations

import pytest

from pipeline.cli import main
from tests.helpers import picture, save_rgb


def _one_line(err: str) -> str:
    assert "Traceback" not in err
    return " ".join(err.split())


def test_an_output_folder_that_is_a_file_is_one_line(tmp_path, capsys):
    source, taken = tmp_path / "src", tmp_path / "afile"
    save_rgb(source / "a.png", picture(0))
    taken.write_text("not a folder")
    assert main(["prepare", str(source), str(taken)]) == 2
    assert f"{taken} is a file, not a folder" in _one_line(capsys.readouterr().err)
    assert taken.read_text() == "not a folder"


def test_a_run_name_that_is_not_one_folder_is_refused(tmp_path, capsys):
    assert main(["train", "draft", str(tmp_path), "--recipe", "xu2020", "--name", "../../escape"]) == 2
    assert "--name '../../escape': a run name is one folder name under ROOT/runs" in _one_line(capsys.readouterr().err)
    assert not (tmp_path.parent / "escape").exists() and not any(tmp_path.iterdir())


def test_joining_a_ray_cluster_that_is_not_there_writes_nothing(tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    source, root = tmp_path / "src", tmp_path / "root"
    save_rgb(source / "a.png", picture(0))
    assert main(["prepare", str(source), str(root), "--executor", "ray", "--ray-address", "auto"]) == 2
    assert "--ray-address auto: cannot start or join Ray" in _one_line(capsys.readouterr().err)
    assert not root.exists()


def test_an_option_for_a_method_that_does_not_run_is_refused(tmp_path, capsys):
    from tests.helpers import make_prepared_dataset

    root = tmp_path / "root"
    make_prepared_dataset(root, 2, size=64)
    assert main(["extract", str(root), "--method", "xdog", "--set", "dilate.kernel_size=3", "--workers", "0"]) == 2
    assert "--set dilate.…: dilate is not among --method xdog" in _one_line(capsys.readouterr().err)
    assert not (root / "lines.parquet").exists()
