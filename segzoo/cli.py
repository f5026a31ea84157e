"""The ``segzoo`` command: list, inspect and measure registered components; run bundles (compare, reproduce, tune);
ship trained runs (export, pack)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any

import segzoo
from segzoo.errors import Terminated, advise_on_stop, raise_on_sigterm, report, run_failure_cleanups, stop_message, user_error
from segzoo.flags import add_flag
from segzoo.registry import KINDS
from segzoo.scaffold import SCAFFOLD_KINDS, new_plugin


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) if rows else len(c) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns), "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    rows = [
        {"kind": c.kind, "name": c.name, "plugin": c.plugin, "plugin_version": c.plugin_version, "summary": c.summary}
        for c in segzoo.list_components(args.kind)
    ]
    print(json.dumps(rows, indent=2) if args.json else _table(rows, ["kind", "name", "plugin", "plugin_version", "summary"]))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    spec = segzoo.get(args.kind, args.name)
    info = {
        "kind": spec.kind,
        "name": spec.name,
        "plugin": spec.plugin,
        "plugin_version": spec.plugin_version,
        "summary": spec.summary,
        "citation": spec.citation,
        "parameters": spec.schema_rows(),
        "presets": spec.presets,
        "json_schema": spec.params.model_json_schema(),
    }
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"{spec.kind} '{spec.name}' from plugin {spec.plugin} {spec.plugin_version}\n  {spec.summary}")
    if spec.citation:
        print(f"  cite: {spec.citation}")
    print()
    print(_table(spec.schema_rows(), ["name", "type", "default", "description"]))
    for preset, values in spec.presets.items():
        print(f"\npreset '{preset}': {json.dumps(values)}")
    return 0


def cmd_complexity(args: argparse.Namespace) -> int:
    from segzoo.complexity import layer_rows, measure

    model = segzoo.create_model(args.name, args.preset, in_channels=args.in_channels, out_channels=args.out_channels)
    result = measure(model, args.in_channels, args.size)
    out: dict[str, Any] = {"params_m": round(result.params_m, 4), "gmac": round(result.gmac, 3)}
    layers = layer_rows(model) if args.layers else []
    if args.json:
        print(json.dumps({**out, "layers": layers} if args.layers else out))
        return 0
    if layers:
        print(_table(layers, list(dict.fromkeys(key for row in layers for key in row))) + "\n")
    print(f"{args.name}{f' ({args.preset})' if args.preset else ''}, {args.in_channels}->{args.out_channels} channels, "
          f"{args.size}x{args.size}: {out['params_m']} M parameters, {out['gmac']} GMac")
    return 0


def cmd_table3(args: argparse.Namespace) -> int:
    """Counts of every architecture preset that has published figures, beside those figures."""
    from segzoo.complexity import measure

    rows = []
    for spec in segzoo.list_components("architecture"):
        for preset, reported in spec.reported.items():
            ours = measure(spec.build(preset, in_channels=3, out_channels=1), 3, args.size)
            row: dict[str, Any] = {"architecture": spec.name, "preset": preset}
            for key, value in (("params_m", ours.params_m), ("gmac", ours.gmac)):
                paper = reported.get(key)
                row[f"{key}"] = round(value, 2)
                row[f"paper_{key}"] = paper if paper is not None else "-"
                row[f"diff_{key}"] = f"{100 * (value - paper) / paper:+.1f}%" if paper else "-"
            rows.append(row)
    columns = ["architecture", "preset", "params_m", "paper_params_m", "diff_params_m", "gmac", "paper_gmac", "diff_gmac"]
    print(json.dumps(rows, indent=2) if args.json else _table(rows, columns))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    """Installed plugins with what each brings, and those that failed to load with the reason."""
    plugins = segzoo.plugin_manager().plugins
    rows = [
        {
            "name": p.name,
            "version": p.version,
            "module": p.module,
            "components": [{"kind": c.kind, "name": c.name} for c in p.components],
            "error": p.error,
        }
        for p in plugins
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    loaded = [{**row, "components": _by_kind(row["components"])} for row in rows if row["error"] is None]
    print(_table(loaded, ["name", "version", "module", "components"]))
    failed = [row for row in rows if row["error"] is not None]
    if failed:
        print("\nnot loaded:")
        for row in failed:
            print(f"  {row['name']} {row['version']} ({row['module']}): {row['error']}")
    return 0


def _by_kind(components: list[dict[str, str]]) -> str:
    """``kind: a, b; kind: c`` for one table cell."""
    kinds: dict[str, list[str]] = {}
    for c in components:
        kinds.setdefault(c["kind"], []).append(c["name"])
    return "; ".join(f"{kind}: {', '.join(names)}" for kind, names in kinds.items()) or "-"


def cmd_new_plugin(args: argparse.Namespace) -> int:
    root = new_plugin(args.name, args.dir, args.kind)
    print(f"created {root}\nnext: pip install -e \"{root}[test]\" && pytest {root}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the commands that inspect the registry: list, info, complexity, table3, plugins, new-plugin."""
    p = subparsers.add_parser("list", help="list registered components")
    p.add_argument("--kind", choices=KINDS)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = subparsers.add_parser("info", help="parameter schema of one component, with defaults")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = subparsers.add_parser("complexity", help="parameters (M) and GMac of an architecture under the pinned counting rule")
    p.add_argument("name")
    p.add_argument("--preset")
    add_flag(p, "--in_channels", renamed_from=["--in-channels"], type=int, default=3)
    add_flag(p, "--out_channels", renamed_from=["--out-channels"], type=int, default=1)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--layers", action="store_true",
                   help="also list every layer as built: each level of a block that describes itself (a PyConv's kernel, "
                   "groups, channels, connections per output channel, parameters), and every other convolution")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_complexity)

    p = subparsers.add_parser("table3", help="parameters and GMac of every paper preset beside the published figures")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_table3)

    p = subparsers.add_parser(
        "plugins", help="installed plugins with their components, and those that failed to load with the reason"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)

    p = subparsers.add_parser(
        "new-plugin", help="scaffold a plugin package (entry point, component, params, tests) that passes its tests"
    )
    p.add_argument("name", help="component and entry-point name, a lowercase identifier; the package is segzoo-NAME")
    p.add_argument("--dir", default=".", help="folder to create segzoo-NAME in (default: the current one)")
    p.add_argument("--kind", default="architecture", choices=SCAFFOLD_KINDS)
    p.set_defaults(func=cmd_new_plugin)


# Every module whose ``register(subparsers)`` adds ``segzoo`` subcommands; a new command adds its module here.
COMMAND_MODULES = ("segzoo.cli", "segzoo.compare", "segzoo.reproduce", "segzoo.tune", "segzoo.export.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segzoo", description=__doc__)
    parser.add_argument("--version", action="version", version=f"segzoo {segzoo.__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


# Commands that continue where they stopped when run again (their trainings are kept and resumed).
RESUMABLE_COMMANDS = ("compare", "tune", "reproduce")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    raise_on_sigterm()
    if args.command in RESUMABLE_COMMANDS:
        advise_on_stop(lambda: f"continue with the same `segzoo {args.command}` command: finished runs are kept, an "
                               "interrupted training resumes", scope="command")
    try:
        return args.func(args)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: every MLflow run still open is closed as KILLED
        run_failure_cleanups(exc)
        print(stop_message(exc), file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except Exception as exc:  # a user's error may arrive wrapped by MONAI's config evaluation
        if user_error(exc) is None:
            raise
        run_failure_cleanups(exc)
        print(report(exc), file=sys.stderr)
        return 2
