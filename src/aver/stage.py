"""Runs one pipeline stage: load validated params, call the stage, print user errors cleanly.

Credentials in URLs are redacted from every log line and error. SIGTERM (from `timeout`, CI, a
scheduler) is handled like Ctrl-C: it raises `Terminated` (a KeyboardInterrupt) in the main
thread, so checkpoints and partial directories are kept and MLflow runs end KILLED; the exit
code is 143 (130 for Ctrl-C). A second SIGTERM kills at once.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import traceback
from collections.abc import Callable
from types import FrameType

from aver import threads
from aver.config import Params, load_params
from aver.errors import AverError, Terminated
from aver.parallel import exit_now_if_ray
from aver.redact import install_log_redaction, redact_text
from aver.workspace import code_info

EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
_sigterms: list[int] = []  # SIGTERMs received (Ray may re-raise one as a KeyboardInterrupt)


def raise_terminated(signum: int, frame: FrameType | None) -> None:
    """SIGTERM handler: raise Terminated once; a second SIGTERM gets the default action."""
    _sigterms.append(signum)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated(f"signal {signum}")


def main(name: str, fn: Callable[[Params], object], argv: list[str] | None = None) -> None:
    """Entry point used by stages/<name>.py and `aver <name>`."""
    parser = argparse.ArgumentParser(prog=f"aver {name}", description=fn.__doc__)
    parser.add_argument("--params", default="params.yaml", help="parameter file (params.yaml)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s")
    install_log_redaction()
    logging.getLogger(__name__).info("%s", code_info().describe())
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        threads.apply()  # the stage process; its pool workers and Ray tasks set their own
        fn(load_params(args.params))
    except AverError as err:
        print(f"aver {name}: error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as stop:
        if isinstance(stop, Terminated) or _sigterms:
            print(f"aver {name}: terminated (SIGTERM); rerun to resume", file=sys.stderr)
            exit_now_if_ray(EXIT_TERMINATED)
            sys.exit(EXIT_TERMINATED)
        print(f"aver {name}: interrupted; rerun to resume", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except Exception:  # a bug or a library error: the traceback, with any URL secrets masked
        print(redact_text(traceback.format_exc()), file=sys.stderr, end="")
        sys.exit(1)
