"""One flag style for segzoo's own command line: underscores, as MONAI's bundle CLI spells them (``--config_file``,
``--dataset_dir``), so a user types a key the same way in ``segzoo`` and in ``python -m monai.bundle run``.

Flags that segzoo spelled with dashes before keep their old spelling for one release, hidden from ``--help``: using
one still works and warns once per process, naming the new spelling.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

_warned: set[str] = set()


class _RenamedFlag(argparse.Action):
    """Store the value under the new flag's dest, after a one-time warning that names the new spelling."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if option_string not in _warned:
            _warned.add(option_string)
            print(f"segzoo: warning: {option_string} is now spelled {self.new}; the old spelling goes in the next release",
                  file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_flag(parser: argparse.ArgumentParser, flag: str, *, renamed_from: Sequence[str] = (), **kwargs: Any) -> argparse.Action:
    """``parser.add_argument(flag, **kwargs)`` for a value-taking flag, plus each old spelling in ``renamed_from`` as a
    hidden alias that warns once (see the module docstring)."""
    action = parser.add_argument(flag, **kwargs)
    for old in renamed_from:
        parser.add_argument(old, dest=action.dest, new=flag, action=_RenamedFlag, type=kwargs.get("type"),
                            default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return action
