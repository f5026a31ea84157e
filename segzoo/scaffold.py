"""``segzoo new-plugin``: a plugin package that installs and passes its own tests as generated.

A third party starts from working wiring (entry point, hooks, params model, version declaration,
tests) and only replaces the network, instead of assembling the contract from the docs.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from packaging.version import Version

import segzoo
from segzoo.errors import SegzooError

SCAFFOLD_KINDS: tuple[str, ...] = ("architecture",)
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
# Files common to every kind: template name -> path in the package ({module}, {name} filled in).
COMMON_FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "__init__.py.tmpl": "src/{module}/__init__.py",
    "plugin.py.tmpl": "src/{module}/plugin.py",
}


@dataclass(frozen=True)
class NewPlugin:
    """A plugin to generate: its kind and the names ``NAME`` is known by, derived once so every file agrees."""

    name: str  # component and entry-point name, e.g. "tiny_net"
    kind: str

    @property
    def distribution(self) -> str:
        return f"segzoo-{self.name.replace('_', '-')}"

    @property
    def module(self) -> str:
        return f"segzoo_{self.name}"

    @property
    def class_name(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))

    def substitutions(self) -> dict[str, str]:
        return {
            "name": self.name,
            "kind": self.kind,
            "distribution": self.distribution,
            "module": self.module,
            "class_name": self.class_name,
            "segzoo_requires": compatible_range(segzoo.__version__),
        }


def compatible_range(version: str) -> str:
    """The specifier a new plugin declares: this segzoo's minor release up to the next major, e.g. ``>=0.1,<1``."""
    v = Version(version)
    return f">={v.major}.{v.minor},<{v.major + 1}"


def new_plugin(name: str, directory: str | Path = ".", kind: str = "architecture") -> Path:
    """Write the package ``segzoo-NAME`` under ``directory`` and return its root.

    Refuses a name that is not a lowercase identifier, one already registered for ``kind`` (the two
    plugins could not be installed together), and a target folder that already exists.
    """
    if kind not in SCAFFOLD_KINDS:
        raise SegzooError(f"new-plugin can scaffold kinds {', '.join(SCAFFOLD_KINDS)}, not '{kind}'")
    if not NAME_PATTERN.fullmatch(name):
        raise SegzooError(
            f"plugin name '{name}' must be a lowercase Python identifier (letters, digits, underscores), e.g. 'my_net'; "
            "it names the component, the entry point and the module segzoo_NAME"
        )
    if keyword.iskeyword(name):
        raise SegzooError(f"plugin name '{name}' is a Python keyword, so the generated `def {name}(...)` and "
                          f"`from ... import {name}` would not compile; choose another name, e.g. '{name}_net'")
    if (kind, name) in segzoo.plugin_manager().registry:
        owner = segzoo.get(kind, name).plugin
        raise SegzooError(f"{kind} '{name}' is already registered by plugin '{owner}'; choose another name")
    plugin = NewPlugin(name, kind)
    root = Path(directory) / plugin.distribution
    if root.exists():
        raise SegzooError(f"{root} already exists; remove it or pass another --dir")
    files = {**COMMON_FILES, f"{kind}.py.tmpl": "src/{module}/{name}.py", f"test_{kind}.py.tmpl": "tests/test_{name}.py"}
    templates = resources.files("segzoo") / "templates" / "plugin"
    values = plugin.substitutions()
    for template, target in files.items():
        path = root / target.format(**values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(templates.joinpath(template).read_text()).substitute(values))
    return root.resolve()
