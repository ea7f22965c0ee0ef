"""Runs one pipeline stage: load validated params, call the stage, print user errors cleanly;
credentials in URLs are redacted from every log line and error."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable

from aver.config import Params, load_params
from aver.errors import AverError
from aver.redact import install_log_redaction, redact_text
from aver.workspace import code_info


def main(name: str, fn: Callable[[Params], object], argv: list[str] | None = None) -> None:
    """Entry point used by stages/<name>.py and `aver <name>`."""
    parser = argparse.ArgumentParser(prog=f"aver {name}", description=fn.__doc__)
    parser.add_argument("--params", default="params.yaml", help="parameter file (params.yaml)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s")
    install_log_redaction()
    logging.getLogger(__name__).info("%s", code_info().describe())
    try:
        fn(load_params(args.params))
    except AverError as err:
        print(f"aver {name}: error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"aver {name}: interrupted; rerun to resume", file=sys.stderr)
        sys.exit(130)
    except Exception:  # a bug or a library error: the traceback, with any URL secrets masked
        print(redact_text(traceback.format_exc()), file=sys.stderr, end="")
        sys.exit(1)
