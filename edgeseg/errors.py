"""One error type for user mistakes, and the CLI wrapper that prints it as one line."""
from __future__ import annotations

import functools
import os
import sys
import traceback
from typing import Any, Callable, Sequence


class UserError(Exception):
    """A mistake the user can fix (bad path, bad flag, wrong file); printed without traceback."""

    exit_code = 2


class CheckFailed(UserError):
    """A verification the user asked for did not pass (e.g. export parity); exit status 1."""

    exit_code = 1


INTERRUPTED = "interrupted; completed checkpoints/files are intact (use --resume)"


def cli_main(run: Callable[[Sequence[str] | None], int | None] | None = None, *,
             interrupted: str = INTERRUPTED) -> Any:
    """Wrap a CLI entry point: UserError -> `error: ...` + exit 2; Ctrl-C -> `error: <interrupted>` + exit 130.

    `--debug` anywhere on the command line (or EDGESEG_DEBUG=1) shows tracebacks. Use as `@cli_main`, or
    `@cli_main(interrupted="what is true after Ctrl-C")` where the default message does not hold.
    """
    if run is None:
        return functools.partial(cli_main, interrupted=interrupted)

    @functools.wraps(run)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        args = list(sys.argv[1:] if argv is None else argv)
        debug = "--debug" in args or os.environ.get("EDGESEG_DEBUG") == "1"
        args = [a for a in args if a != "--debug"]
        try:
            return int(run(args) or 0)
        except UserError as exc:
            if debug:
                traceback.print_exc()
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            print(f"error: {interrupted}", file=sys.stderr)
            return 130
        except MemoryError:
            print("error: out of memory; lower --batch-size or --img-size", file=sys.stderr)
            return 1
        except OSError as exc:
            if debug:
                traceback.print_exc()
            print(f"error: {exc.strerror or exc} ({exc.filename or 'file system'})", file=sys.stderr)
            return 1

    return wrapper
