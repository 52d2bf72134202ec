"""``edgeir env``: versions, devices and plugin distributions."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("env", help="print versions, compute devices and installed plugins")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from edgeir.hostinfo import environment

    info = environment()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"edgeir {info['edgeir']} on Python {info['python']} ({info['platform']})")
    for name, version in info["packages"].items():
        print(f"  {name:<13} {version}")
    print(f"devices: {', '.join(info['devices'])}; reference runs on {info['reference_device']} "
          f"with {info['torch_threads']} threads")
    for group, plugins in info["plugins"].items():
        print(f"{group}:")
        for name, source in plugins.items():
            print(f"  {name:<12} {source}")
    return 0
