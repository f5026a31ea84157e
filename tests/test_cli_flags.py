"""One flag style across segzoo's command line (underscores, as MONAI's ``--config_file``); the dashed spellings of
the last release still work for one more, hidden, with one warning that names the new spelling."""

from __future__ import annotations

import argparse

import pytest

import segzoo.flags
from segzoo.cli import build_parser, main


def subcommand_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(subparsers.choices)


def test_every_visible_flag_is_spelled_with_underscores() -> None:
    dashed = [f"segzoo {name} {option}" for name, sub in subcommand_parsers(build_parser()).items()
              for action in sub._actions if action.help != argparse.SUPPRESS
              for option in action.option_strings if option.startswith("--") and "-" in option[2:]]
    assert dashed == []


def test_an_old_dashed_flag_still_works_and_warns_once(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segzoo.flags, "_warned", set())
    assert main(["complexity", "unet", "--size", "32", "--in-channels", "2", "--in-channels", "1", "--out-channels", "2"]) == 0
    old = capsys.readouterr()
    assert old.err.count("--in-channels is now spelled --in_channels") == 1
    assert "--out-channels is now spelled --out_channels" in old.err
    assert main(["complexity", "unet", "--size", "32", "--in_channels", "1", "--out_channels", "2"]) == 0
    new = capsys.readouterr()
    assert new.err == "" and new.out == old.out and "1->2 channels" in new.out
