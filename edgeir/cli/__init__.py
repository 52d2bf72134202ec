"""The ``edgeir`` command line: thin commands over the Python API.

Each command module parses its flags, calls one library function and prints. Errors become one
sentence and an exit code here, in one place: usage 2, plugin load 3, stage failure 4, check
failure 5; ``edgeir gate`` exits 1 when a rule fails (GateFailed). ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Sequence

from edgeir import __version__

COMMANDS = ("list", "env", "export", "verify", "run", "profile", "import-profile", "gate", "report")
_MODULES = {"list": "listing", "env": "env", "export": "export", "verify": "verify", "run": "run",
            "profile": "profile", "import-profile": "import_profile", "gate": "gate", "report": "report"}
COMMANDS += ("finetune", "eval")  # training and evaluation (issue 7)
COMMANDS += ("quant-report",)  # int8 sensitivity (issue 7)
_MODULES["quant-report"] = "quant_report"
_MODULES.update({"finetune": "finetune", "eval": "evaluate"})
COMMANDS += ("check-plugin",)  # the plugin conformance kit (issue 20)
_MODULES["check-plugin"] = "check_plugin"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeir",
        description="Export image-restoration networks to ExecuTorch, Core ML and ONNX; verify, run and profile them.",
    )
    parser.add_argument("--version", action="version", version=f"edgeir {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for command in COMMANDS:
        module = importlib.import_module(f"edgeir.cli.{_MODULES[command]}")
        module.add_parser(subparsers)
    return parser


def _configure_logging(quiet: bool, debug: bool) -> None:
    level = logging.DEBUG if debug else logging.ERROR if quiet else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("edgeir: %(levelname)s: %(message)s"))
    root = logging.getLogger("edgeir")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # Third-party SDKs log optional-kernel and deprecation chatter at import; keep it out of the way.
    for noisy in ("torchao", "torch", "executorch", "coremltools", "onnxscript"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.ERROR)
    if not debug:
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"(torch|coremltools|onnxscript)\.")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    from edgeir.errors import EdgeirError

    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.quiet, args.debug)
    previous = _terminate_as_interrupt()
    try:
        return int(args.handler(args) or 0)
    except EdgeirError as exc:
        if args.debug:
            raise
        print(f"edgeir: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print("edgeir: interrupted; nothing was left half-written", file=sys.stderr)
        return 128 + getattr(exc, "signum", signal.SIGINT)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so that the same clean-up as for Ctrl-C runs."""

    signum = signal.SIGTERM


def _terminate_as_interrupt():
    """Handle SIGTERM like SIGINT (CI runners and ``timeout`` send it); returns the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise Terminated()

    return signal.signal(signal.SIGTERM, handler)
