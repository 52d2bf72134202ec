"""``edgeir check-plugin NAME``: the plugin conformance suite (:mod:`edgeir.testing.conformance`) without pytest."""

from __future__ import annotations

import argparse
import time

LABELS = {"passed": "PASS", "failed": "FAIL", "not-run": "NOT RUN"}


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one target name, e.g. --targets onnx,executorch")
    return names


def _photos(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of photos") from None
    if value < 1:
        raise argparse.ArgumentTypeError("--photos must be at least 1")
    return value


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "check-plugin", help="run the plugin conformance suite on a method (what a plugin's CI runs)",
        description="Check an installed method plugin the way edgeir uses it: it loads through its entry point, "
                    "whose name equals SPEC.name, and has 'paper' and 'tiny' variants; every declared parameter "
                    "count matches the built model; the tiny model's eager forward honours its IO contract for "
                    "every task; its state dict round-trips through safetensors and torch.save files; and for every "
                    "registered "
                    "target (or --targets) the tiny variant exports with random weights, passes the export check, "
                    "verifies on built-in photos, and its manifest's program I/O equals the eager programs'. "
                    "Bundles are written to a temporary directory that is removed afterwards. One line per check: "
                    "PASS, FAIL or NOT RUN (a target that cannot run its artifact on this host, with its reason; "
                    "not a failure). Exits 0 when no check fails, 5 when one does, 3 when the plugin does not load, "
                    "2 for an unknown method or target. The same checks run under pytest as "
                    "'pytest --pyargs edgeir.testing --method NAME'.")
    parser.add_argument("method", help="the method's entry-point name (see 'edgeir list')")
    parser.add_argument("--targets", type=_names, default=None, metavar="T[,T...]",
                        help="comma-separated targets to export to (default: every registered target)")
    parser.add_argument("--photos", type=_photos, default=2, metavar="N",
                        help="built-in photos verify runs on (default 2)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from edgeir.discovery import methods
    from edgeir.errors import CheckFailed, PluginLoadError
    from edgeir.progress import progress_bar
    from edgeir.testing.conformance import FAILED, plan, remove_workdir, run_check, workdir

    if args.method not in methods().failures:
        methods().get(args.method)  # an unknown name: UnknownNameError listing the valid ones (exit 2)
    start = time.perf_counter()
    root = workdir()
    outcomes = []
    try:
        checks = plan(args.method, root, args.targets, args.photos)
        width = max(len(check.name) for check in checks)
        with progress_bar(total=len(checks), desc=f"check-plugin {args.method}") as bar:
            for check in checks:
                bar.set_postfix_str(check.name)
                outcome = run_check(check)
                outcomes.append(outcome)
                bar.update(1)
                line = f"{LABELS[outcome.status]:7}  {outcome.check:{width}}  {outcome.seconds:6.1f}s  {outcome.detail}"
                if not args.quiet or outcome.status == FAILED:
                    bar.write(line)  # above the bar, on stdout
                if check.name == "spec" and outcome.status == FAILED:
                    break  # nothing else can be checked on a spec that does not load
    finally:
        remove_workdir(root)
    counts = {status: sum(o.status == status for o in outcomes) for status in LABELS}
    summary = (f"{args.method}: {counts['passed']} passed, {counts['failed']} failed, {counts['not-run']} not run "
               f"in {time.perf_counter() - start:.0f} s")
    failed = [o for o in outcomes if o.status == FAILED]
    if not failed:
        if not args.quiet:
            print(summary)
        return 0
    if isinstance(failed[0].error, PluginLoadError):
        raise PluginLoadError(f"{summary}: {failed[0].detail}")
    raise CheckFailed(f"{summary}: {', '.join(o.check for o in failed)}")
