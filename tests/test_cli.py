"""The ``segzoo`` command as a user types it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from segzoo.cli import main


def test_list_json_has_one_object_per_component(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"kind", "name", "plugin", "plugin_version", "summary"} == set(rows[0])
    assert {("architecture", "pyconvunet"), ("block", "pyconv"), ("loss", "dice_bce"), ("metric", "miou_with_background")} <= {
        (r["kind"], r["name"]) for r in rows
    }


def test_list_filters_by_kind(capsys: pytest.CaptureFixture[str]) -> None:
    main(["list", "--kind", "metric", "--json"])
    assert {r["kind"] for r in json.loads(capsys.readouterr().out)} == {"metric"}


def test_info_shows_the_schema_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    main(["info", "block", "pyconv", "--json"])
    info = json.loads(capsys.readouterr().out)
    params = {p["name"]: p for p in info["parameters"]}
    assert params["kernels"]["default"] == [3, 5, 7, 9] and params["groups"]["default"] == [1, 4, 8, 16]
    assert params["in_channels"]["default"] == "(required)"


def test_complexity_json_reproduces_the_papers_unet(capsys: pytest.CaptureFixture[str]) -> None:
    main(["complexity", "unet", "--preset", "paper", "--size", "512", "--json"])
    assert json.loads(capsys.readouterr().out) == {"params_m": 7.766, "gmac": 48.572}


def test_an_error_is_one_line_naming_the_fix_not_a_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "segzoo", "complexity", "unte"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "Did you mean: unet" in proc.stderr


def test_table3_prints_ours_beside_the_paper(capsys: pytest.CaptureFixture[str]) -> None:
    main(["table3", "--size", "64", "--json"])
    rows = {r["architecture"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["unet"]["paper_params_m"] == 7.77 and rows["unet"]["diff_params_m"] == "-0.1%"
    assert rows["pyconvunet"]["paper_gmac"] == 10.65
