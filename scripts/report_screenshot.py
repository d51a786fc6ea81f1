"""Screenshot a compress run's ``report.html`` in a headless browser.

Usage::

    python scripts/report_screenshot.py RUN_DIR OUT.png [--width 1100] [--height 6000]

The report is (re)written first with :func:`slimkit.report.write_report`. The first browser
found among chromium, chromium-browser, google-chrome and wkhtmltoimage takes the picture;
without one the script exits 2 with a line naming what to install.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL = (
    "no headless browser found: install one, e.g. `apt-get install chromium` "
    "(or google-chrome, or wkhtmltopdf for wkhtmltoimage)"
)


def _command(html: Path, out: Path, width: int, height: int) -> list[str] | None:
    for name in CHROMES:
        exe = shutil.which(name)
        if exe:
            sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []  # root: no user namespace
            return [
                exe,
                "--headless",
                *sandbox,
                "--disable-gpu",
                "--hide-scrollbars",
                f"--window-size={width},{height}",
                f"--screenshot={out}",
                html.as_uri(),
            ]
    exe = shutil.which("wkhtmltoimage")
    if exe:
        return [exe, "--quiet", "--width", str(width), str(html), str(out)]
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=6000, help="page height captured (px)")
    args = parser.parse_args(argv)

    from slimkit.report import write_report

    html = Path(write_report(args.run_dir)["html"]).resolve()
    out = args.out.resolve()
    command = _command(html, out, args.width, args.height)
    if command is None:
        print(f"report_screenshot: {INSTALL}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as profile:
        env = {**os.environ, "HOME": profile}  # chromium writes its profile under HOME
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    if done.returncode != 0 or not out.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        print(f"report_screenshot: {command[0]} failed: {tail[0]}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
