"""Makes a clone's small venv use a shared venv's packages and command-line tools.

Usage: python scripts/link_venv.py SHARED_VENV CLONE_VENV

The clone's venv gets a .pth that adds the shared site-packages (their own .pth files
included), and a copy of each of the shared venv's console scripts whose interpreter line is
rewritten to the clone's python, so `dvc`, `pytest`, `ray`, ... run with the clone's packages
first. Compiled tools (ruff) are linked.
"""

import sys
import sysconfig
from pathlib import Path

SKIP = ("activate", "python", "Activate.ps1", "deactivate")


def site_packages(venv: Path) -> Path:
    """The purelib directory of `venv` (same Python as this one)."""
    return Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))


def link_scripts(shared: Path, clone: Path) -> int:
    """Copy (rewritten) or link every console script of `shared` into `clone`; the count."""
    old = str(shared / "bin" / "python").encode()
    new = str(clone / "bin" / "python").encode()
    count = 0
    for script in sorted((shared / "bin").iterdir()):
        target = clone / "bin" / script.name
        if script.name.startswith(SKIP) or target.exists() or not script.is_file():
            continue
        data = script.read_bytes()
        if data.startswith(b"#!") and old in data[:512]:
            # The interpreter is named in the first line, or in the second for pip's
            # long-path form (#!/bin/sh, then an exec line): rewrite only those two.
            lines = data.split(b"\n", 2)
            lines[:2] = [line.replace(old, new) for line in lines[:2]]
            target.write_bytes(b"\n".join(lines))
            target.chmod(0o755)
        else:
            target.symlink_to(script.resolve())
        count += 1
    return count


def main(shared_arg: str, clone_arg: str) -> None:
    shared, clone = Path(shared_arg).resolve(), Path(clone_arg).absolute()
    pth = site_packages(clone) / "aver_shared_venv.pth"
    pth.write_text(f"import site; site.addsitedir({str(site_packages(shared))!r})\n")
    link_scripts(shared, clone)


if __name__ == "__main__":
    main(*sys.argv[1:3])
