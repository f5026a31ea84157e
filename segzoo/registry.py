"""The component registry: what a plugin contributes and how a config builds it.

A *component* is a named factory of one *kind* (architecture, block, loss, ...)
with a pydantic model of its parameters. Plugins never touch the registry
directly: they return components from the ``segzoo_components`` hook and the
plugin manager (:mod:`segzoo.plugins`) adds them here, recording which plugin
brought each one.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from segzoo.errors import SegzooError
from segzoo.overrides import is_none

KINDS: tuple[str, ...] = ("architecture", "block", "train_hook", "loss", "fusion", "metric", "dataset", "backbone")
# Parameters every caller of a kind passes (bundles build any architecture with these; networks any backbone), and the
# model in segzoo.nn that declares them; checked when a plugin registers the component.
REQUIRED_PARAMS: dict[str, tuple[tuple[str, ...], str]] = {
    "architecture": (("in_channels", "out_channels", "final_activation"), "segzoo.nn.ArchitectureParams"),
    "backbone": (("in_channels",), "segzoo.nn.BackboneParams"),
}


class Params(BaseModel):
    """Base class of every component's parameter model: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())


class UnknownKindError(SegzooError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownComponentError(SegzooError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class ComponentParamsError(SegzooError, ValueError):
    """A parameter failed validation; the message names component, field, value and expectation."""


class ComponentContractError(SegzooError):
    """A component's parameter model lacks what every caller of its kind passes."""


class DuplicateComponentError(SegzooError):
    """Two plugins registered the same (kind, name)."""


class UnknownPresetError(SegzooError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Built:
    """How an object was built: kept on it as ``segzoo_built`` (as timm keeps ``pretrained_cfg`` on a model), so
    tracking, checkpoints and reports read what was built from the object instead of a config restating it."""

    kind: str
    name: str
    preset: str | None
    params: dict[str, Any]
    plugin: str
    plugin_version: str

    def describe(self) -> dict[str, Any]:
        """``{"name", "preset", **params, "plugin", "plugin_version"}``: one flat record for logs and files."""
        return {"name": self.name, "preset": self.preset, **self.params,
                "plugin": self.plugin, "plugin_version": self.plugin_version}


def built(obj: Any) -> Built | None:
    """The :class:`Built` record of an object made by :meth:`Component.build`, if it could keep one."""
    return getattr(obj, "segzoo_built", None)


@dataclass(frozen=True)
class Component:
    """One registered factory. ``plugin`` and ``plugin_version`` are filled in at registration."""

    kind: str
    name: str
    factory: Callable[..., Any]
    params: type[Params]
    summary: str
    citation: str = ""
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    reported: dict[str, dict[str, float]] = field(default_factory=dict)
    plugin: str = "?"
    plugin_version: str = "?"

    def validate(self, preset: str | None = None, **params: Any) -> Params:
        """Merge ``preset`` (if any) under ``params`` and validate them with the component's model."""
        merged: dict[str, Any] = {}
        if not is_none(preset):  # a command line says "no preset" as none
            if preset not in self.presets:
                raise UnknownPresetError(
                    f"{self.kind} '{self.name}' has no preset '{preset}'; "
                    f"available presets: {', '.join(sorted(self.presets)) or '(none)'}"
                )
            merged.update(self.presets[preset])
        merged.update(params)
        try:
            return self.params(**merged)
        except ValidationError as err:
            raise ComponentParamsError(_explain(self, err)) from None

    def build(self, preset: str | None = None, **params: Any) -> Any:
        """Validate ``params`` over ``preset``, call the factory with them, and record on the result how it was built.

        Every component a config, the CLI or a plugin makes goes through here, so every one is validated the same
        way. The record (:class:`Built`) is set as ``segzoo_built`` on objects that take attributes (networks,
        losses, hooks); builtins such as a dataset's list of items cannot keep one.
        """
        validated = self.validate(preset, **params)
        obj = self.factory(**{name: getattr(validated, name) for name in type(validated).model_fields})
        preset = None if is_none(preset) else preset
        # A factory that had to settle a parameter itself (one the input forced) says so on what it returns, so the
        # record shows what was built and rebuilds it.
        resolved = getattr(obj, "segzoo_resolved_params", None) or {}
        record = Built(self.kind, self.name, preset, {**validated.model_dump(), **resolved}, self.plugin, self.plugin_version)
        try:
            obj.segzoo_built = record
        except (AttributeError, TypeError):
            pass  # a builtin (list, tuple, ...) keeps no attributes; its caller describes it
        return obj

    def schema_rows(self) -> list[dict[str, Any]]:
        """One row per parameter: name, type, default, description (what ``segzoo info`` prints)."""
        rows = []
        for name, info in self.params.model_fields.items():
            default = "(required)" if info.is_required() else info.get_default(call_default_factory=True)
            rows.append(
                {
                    "name": name,
                    "type": _type_name(info.annotation),
                    "default": default,
                    "description": info.description or "",
                }
            )
        return rows


def component(
    kind: str,
    name: str,
    params: type[Params],
    summary: str,
    citation: str = "",
    presets: dict[str, dict[str, Any]] | None = None,
    reported: dict[str, dict[str, float]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a class or function as a segzoo component.

    ``presets`` name parameter sets (``"paper"``: the published configuration);
    ``reported`` gives, per preset, the figures its paper published (``params_m``, ``gmac``, and
    scores as ``"<dataset>.<metric>"``) so ``segzoo table3`` and ``segzoo compare`` can print ours beside them.

    The decorated object is returned unchanged, with its :class:`Component`
    spec attached as ``__segzoo_component__`` so a plugin's hook can return it.
    """
    if kind not in KINDS:
        raise UnknownKindError(f"unknown component kind '{kind}'; kinds are: {', '.join(KINDS)}")

    def wrap(factory: Callable[..., Any]) -> Callable[..., Any]:
        factory.__segzoo_component__ = Component(  # type: ignore[attr-defined]
            kind=kind,
            name=name,
            factory=factory,
            params=params,
            summary=summary,
            citation=citation,
            presets=dict(presets or {}),
            reported=dict(reported or {}),
        )
        return factory

    return wrap


def spec_of(obj: Any) -> Component:
    """The :class:`Component` of a decorated factory, or the component itself."""
    if isinstance(obj, Component):
        return obj
    spec = vars(obj).get("__segzoo_component__") if hasattr(obj, "__dict__") else None
    if spec is None:
        raise TypeError(f"{obj!r} is not a segzoo component: decorate it with @segzoo.component(...)")
    return spec


def check_component(spec: Component) -> Component:
    """Refuse a component that ``segzoo list``/``info`` or a config could not use, naming what is wrong with it."""
    where = f"component {spec.kind!r}/{spec.name!r}"
    if spec.kind not in KINDS:
        raise TypeError(f"{where}: kind must be one of {', '.join(KINDS)}")
    if not isinstance(spec.name, str) or not spec.name.strip():
        raise TypeError(f"{where}: the name must be a non-empty string")
    if not callable(spec.factory):
        raise TypeError(f"{where}: the factory {spec.factory!r} is not callable")
    if not (isinstance(spec.params, type) and issubclass(spec.params, BaseModel)):
        raise TypeError(f"{where}: params must be a segzoo.Params subclass, got {spec.params!r}")
    try:
        spec.schema_rows()
    except Exception as exc:  # noqa: BLE001 - a model whose defaults cannot even be listed is unusable
        raise TypeError(f"{where}: its params model {spec.params.__name__} is broken ({type(exc).__name__}: {exc})") from None
    defaults = {
        name: f.get_default(call_default_factory=True) for name, f in spec.params.model_fields.items() if not f.is_required()
    }
    try:  # pydantic does not check defaults: a default of the wrong type would otherwise build and train
        spec.params.model_validate(defaults, strict=False)
    except ValidationError as exc:
        wrong = "; ".join(f"{'.'.join(map(str, e['loc']))} = {e.get('input')!r}: {e['msg']}" for e in exc.errors()
                          if e["loc"] and e["loc"][0] in defaults)
        if wrong:
            raise TypeError(f"{where}: a default of its params model {spec.params.__name__} does not fit its own type ({wrong}); "
                            "fix the default in the plugin") from None
    return spec


def check_contract(spec: Component, plugin: str) -> None:
    """Refuse a component whose parameter model lacks what every caller of its kind passes (:data:`REQUIRED_PARAMS`)."""
    required, model = REQUIRED_PARAMS.get(spec.kind, ((), ""))
    missing = [name for name in required if name not in spec.params.model_fields]
    if missing:
        raise ComponentContractError(
            f"{spec.kind} '{spec.name}' of plugin '{plugin}': its parameter model {spec.params.__name__} lacks "
            f"{', '.join(missing)}, which every caller of a {spec.kind} passes; derive it from {model}."
        )


class Registry:
    """All components, keyed by (kind, name)."""

    def __init__(self) -> None:
        self._components: dict[tuple[str, str], Component] = {}

    def add(self, obj: Any, plugin: str, plugin_version: str) -> Component:
        return self.add_all([obj], plugin, plugin_version)[0]

    def add_all(self, objs: Iterable[Any], plugin: str, plugin_version: str) -> list[Component]:
        """Register every component of one plugin, or none: each is checked (and against the others) before any is added,
        so a plugin that fails half-way leaves no half of itself behind."""
        staged: dict[tuple[str, str], Component] = {}
        for obj in objs:
            spec = check_component(spec_of(obj))
            check_contract(spec, plugin)
            key = (spec.kind, spec.name)
            other = self._components.get(key) or staged.get(key)
            if other is not None:
                raise DuplicateComponentError(
                    f"{spec.kind} '{spec.name}' is registered twice: by plugin '{other.plugin}' "
                    f"and by plugin '{plugin}'. Uninstall one of them or rename the component in one."
                )
            staged[key] = Component(**{**spec.__dict__, "plugin": plugin, "plugin_version": plugin_version})
        self._components.update(staged)
        return list(staged.values())

    def get(self, kind: str, name: str) -> Component:
        if kind not in KINDS:
            close = difflib.get_close_matches(kind, KINDS, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownKindError(f"unknown component kind '{kind}'{hint} Kinds are: {', '.join(KINDS)}")
        try:
            return self._components[(kind, name)]
        except KeyError:
            names = self.names(kind)
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise UnknownComponentError(
                f"no {kind} named '{name}'.{hint} Registered {kind}s: {', '.join(names) or '(none)'}. "
                f"`segzoo list --kind {kind}` shows them with their plugins."
            ) from None

    def names(self, kind: str) -> list[str]:
        return sorted(name for (k, name) in self._components if k == kind)

    def components(self, kind: str | None = None) -> list[Component]:
        return sorted(
            (c for c in self._components.values() if kind is None or c.kind == kind),
            key=lambda c: (KINDS.index(c.kind), c.name),
        )

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._components


def _explain(spec: Component, err: ValidationError) -> str:
    lines = [f"invalid parameters for {spec.kind} '{spec.name}':"]
    fields = list(spec.params.model_fields)
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        if e["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(e["loc"][0]), fields, n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            lines.append(f"  - '{loc}' is not a parameter.{hint} Valid parameters: {', '.join(fields)}")
        elif e["type"] == "missing":
            lines.append(f"  - '{loc}' is required and was not given")
        else:
            expected = e["msg"]
            lines.append(f"  - '{loc}': got {e.get('input')!r} ({type(e.get('input')).__name__}); expected: {expected}")
    lines.append(f"`segzoo info {spec.kind} {spec.name}` shows every parameter with its type and default.")
    return "\n".join(lines)


def _type_name(annotation: Any) -> str:
    name = getattr(annotation, "__name__", None)
    return name if name and not getattr(annotation, "__args__", None) else str(annotation).replace("typing.", "")
