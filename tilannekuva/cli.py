"""The ``tilannekuva`` command.

Each subcommand lives in its own module that exports ``add_arguments(parser)`` and
``run(args, settings) -> int``; modules are imported only when their subcommand runs,
so ``tilannekuva generate`` does not pay for importing Faust.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import importlib.util
import io
import signal
import sys

from tilannekuva.config import ConfigError, Settings, tune_gc

SUBCOMMANDS = {
    "generate": (
        "tilannekuva.synthetic",
        "write synthetic register events of the six municipalities",
    ),
    "produce": ("tilannekuva.produce", "send an event file into register-events"),
    "topics": ("tilannekuva.topics", "create the project's Kafka topics"),
    "worker": ("tilannekuva.worker", "run the Faust stream worker"),
    "api": ("tilannekuva.api", "serve the situation picture HTTP API"),
    "picture": (
        "tilannekuva.batch",
        "compute the picture from an event file (batch reference, pandas)",
    ),
    "demo": ("tilannekuva.demo", "zero-setup demo: in-process pipeline, embedded Redis, live API"),
    "rebase": (
        "tilannekuva.rebase",
        "ask the learner to re-base the family types (new ids, old → new mapping)",
    ),
    "evaluate": (
        "tilannekuva.evaluate",
        "evaluate family types and service-need groups against planted truth",
    ),
    "compare": (
        "tilannekuva.compare",
        "compare the API's answers with the batch reference, cell by cell",
    ),
    "alerts": (
        "tilannekuva.alerts",
        "alerts backtest: replay an event file and list the alerts each method would raise",
    ),
    "evaluate-alerts": (
        "tilannekuva.evaluate_alerts",
        "evaluate the alert methods against planted shifts, side by side",
    ),
    "evaluate-impact": (
        "tilannekuva.impact_eval",
        "evaluate the service-impact estimates against planted effects",
    ),
    "disclosure": ("tilannekuva.disclosure_eval", "attack the published history (issue 17)"),
    "export": (
        "tilannekuva.export",
        "the published history (suppressed as the API) as a tidy Parquet or CSV table",
    ),
}


# Modules that a plain `pip install tilannekuva` does not bring: top-level import name ->
# (distribution, extra of pyproject.toml that brings it).
OPTIONAL_MODULES = {
    "sklearn": ("scikit-learn", "evaluate"),
    "pyarrow": ("pyarrow", "export"),  # only for --format parquet: checked by the command
}
# Subcommand -> the optional modules it needs: checked before it runs, so that it fails
# at once, not after minutes of work.
NEEDS = {
    "evaluate": ("sklearn",),
}


def _hint(command: str, module: str) -> str:
    dist, extra = OPTIONAL_MODULES[module]
    return f"tilannekuva {command} needs {dist}: pip install 'tilannekuva[{extra}]'"


def missing_extra(command: str, exc: ModuleNotFoundError) -> str | None:
    """The one-line hint for an optional module that is not installed, else None."""
    top = (exc.name or "").split(".")[0]
    return _hint(command, top) if top in OPTIONAL_MODULES else None


def _missing_needs(command: str) -> str | None:
    for module in NEEDS.get(command, ()):
        if importlib.util.find_spec(module) is None:
            return _hint(command, module)
    return None


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tilannekuva", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        # Only the chosen subcommand's module is imported to add its arguments.
        if name in argv:
            importlib.import_module(module_name).add_arguments(p)
    return parser


def _stacks_on_sigusr1() -> None:
    """``kill -USR1 <pid>`` prints every thread's stack to stderr: where a stuck run is.
    Not where stderr is no file (called in-process, under a test's capture)."""
    try:
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    except (io.UnsupportedOperation, AttributeError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _stacks_on_sigusr1()
    command = next((a for a in argv if a in SUBCOMMANDS), "")
    try:
        args = build_parser(argv).parse_args(argv)
        hint = _missing_needs(args.command)
        if hint:
            print(hint, file=sys.stderr)
            return 2
        settings = Settings.from_env()
        tune_gc()
        module = importlib.import_module(args._module)
        return int(module.run(args, settings) or 0)
    except ConfigError as exc:
        print(f"tilannekuva: configuration error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        hint = missing_extra(command, exc)
        if hint is None:
            raise
        print(hint, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
