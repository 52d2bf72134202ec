"""``edgeir list``: methods with their variants and tasks, targets, and quantization schemes."""

from __future__ import annotations

import argparse
import json
import sys

NOTHING_REGISTERED = (
    "no methods, targets or quantization schemes are registered: edgeir finds them through the entry points of "
    "installed packages, and this edgeir is not installed (run from a checkout?). Install it with 'make install' "
    "or 'pip install -e .', then run edgeir from that environment.")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("list", help="list methods, variants, tasks, targets and quantization schemes")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from edgeir.discovery import methods, quant_schemes, targets

    catalog = {"methods": {}, "targets": {}, "quant": {}, "failed_plugins": []}
    found = methods()
    for name in found.registry.names():
        spec = found.registry.get(name)
        catalog["methods"][name] = {
            "summary": spec.summary,
            "variants": {v.name: v.description for v in spec.variants},
            "default_variant": spec.default_variant,
            "tasks": list(spec.tasks),
            "default_task": spec.default_task,
        }
    for name in targets().registry.names():
        target = targets().registry.get(name)
        available = target.availability()
        catalog["targets"][name] = {"summary": target.summary, "backends": list(target.backends),
                                    "quant": list(target.quant_schemes), "default_quant": target.default_quant,
                                    "available": available.ok, "reason": available.reason,
                                    "runtimes": list(getattr(target, "runtimes", ()))}
    for name in quant_schemes().registry.names():
        catalog["quant"][name] = quant_schemes().registry.get(name).summary
    for discovered in (methods(), targets(), quant_schemes()):
        catalog["failed_plugins"] += [failure.describe() for failure in discovered.failures.values()]

    if not catalog["methods"] and not catalog["targets"] and not catalog["failed_plugins"]:
        print(NOTHING_REGISTERED, file=sys.stderr)
        return 3
    if args.json:
        print(json.dumps(catalog, indent=2))
        return 0
    width = max([12, *(len(n) for group in ("methods", "targets", "quant") for n in catalog[group])])
    print("Methods:")
    for name, info in catalog["methods"].items():
        print(f"  {name:<{width}} {info['summary']}")
        variants = ", ".join(f"{v}*" if v == info["default_variant"] else v for v in info["variants"])
        tasks = ", ".join(f"{t}*" if t == info["default_task"] else t for t in info["tasks"])
        print(f"  {'':<{width}} variants: {variants}")
        print(f"  {'':<{width}} tasks:    {tasks}")
    print("Targets:")
    for name, info in catalog["targets"].items():
        state = "" if info["available"] else f"  [unavailable: {info['reason']}]"
        print(f"  {name:<{width}} {info['summary']}{state}")
        print(f"  {'':<{width}} backends: {', '.join(info['backends'])}; quant: {', '.join(info['quant'])} "
              f"(default {info['default_quant']})"
              + (f"; verify --runtime: {', '.join(info['runtimes'])}" if info["runtimes"] else ""))
    print("Quantization schemes:")
    for name, summary in catalog["quant"].items():
        print(f"  {name:<{width}} {summary}")
    if catalog["failed_plugins"]:
        print("Plugins that failed to load:")
        for line in catalog["failed_plugins"]:
            print(f"  {line}")
    print("(* = default)")
    return 0
