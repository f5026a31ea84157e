"""The metrics a bundle validates and evaluates with, stated once per bundle in one shape.

A bundle's ``metrics`` maps the name a value is logged under to the registered metric computing it::

    {"foreground_iou": "foreground_iou",
     "iou_membrane": {"metric": "class_iou", "params": {"class_index": 1}},
     "auc": {"metric": "auc", "on": ["cls_pred", "cls"]}}

A string is short for ``{"metric": NAME}``; ``params`` go to the metric; ``on`` names the engine output keys it
compares (default ``["pred", "label"]``). Renaming a logged value is a change of one key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import segzoo
from segzoo.bundle.validation import ConfigError

MetricSpec = str | Mapping[str, Any]
SPEC_KEYS = {"metric", "params", "on"}


def metric_spec(name: str, spec: MetricSpec) -> tuple[str, dict[str, Any], list[str]]:
    """``(registered metric, params, output keys)`` of the logged value ``name``."""
    if isinstance(spec, str):
        return spec, {}, ["pred", "label"]
    unknown = set(spec) - SPEC_KEYS
    if "metric" not in spec or unknown:
        raise ConfigError(f"config key 'metrics', entry '{name}': expected a metric name or a dict with keys "
                          f"{sorted(SPEC_KEYS)} ('metric' required), got {dict(spec)!r}")
    return spec["metric"], dict(spec.get("params") or {}), list(spec.get("on") or ["pred", "label"])


def check_metrics(metrics: Mapping[str, MetricSpec]) -> None:
    """Every entry is well formed and its metric registered with valid params; errors name the entry."""
    for name, spec in metrics.items():
        metric, params, _ = metric_spec(name, spec)
        try:
            segzoo.get("metric", metric).validate(**params)
        except segzoo.SegzooError as err:
            raise ConfigError(f"config key 'metrics', entry '{name}': {err}") from None


def metric_handlers(metrics: Mapping[str, MetricSpec], prefix: str = "") -> dict[str, Any]:
    """One Ignite metric handler per entry, logged as ``prefix + name`` (``val_`` during training)."""
    from monai.handlers import IgniteMetricHandler, from_engine

    handlers = {}
    for name, spec in metrics.items():
        metric, params, keys = metric_spec(name, spec)
        handlers[prefix + name] = IgniteMetricHandler(
            metric_fn=segzoo.build("metric", metric, **params), output_transform=from_engine(keys)
        )
    return handlers


def key_metric(handlers: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The evaluator's ``key_val_metric``: the handler of ``name`` alone (it selects the best checkpoint)."""
    if name not in handlers:
        raise ConfigError(f"config key 'key_metric' = {name!r} is none of the metrics: {', '.join(handlers)}")
    return {name: handlers[name]}


def other_metrics(handlers: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The evaluator's ``additional_metrics``: every handler but the key metric's."""
    return {k: v for k, v in handlers.items() if k != name}
