"""Screenshot `reports/index.html` (and, with --also, other pages) in a headless system Chromium (run by hand).

    python tools/screenshot_index.py --index reports/index.html --out reports/explore/index.png \
        --also reports/compare/compare.html=reports/explore/compare.png
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from screenshot_explorer import CHROMIUM_ARGS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", default="reports/index.html")
    parser.add_argument("--out", default="reports/explore/index.png")
    parser.add_argument("--also", action="append", default=[], metavar="PAGE=PNG")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    pages = [(args.index, args.out)] + [tuple(a.split("=", 1)) for a in args.also]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for html, png in pages:
            if not Path(html).is_file():
                raise SystemExit(f"{html}: no such page (run `make demo` or `vadlab report` first)")
            Path(png).parent.mkdir(parents=True, exist_ok=True)
            page.goto(Path(html).resolve().as_uri())
            page.wait_for_load_state("load")
            time.sleep(0.5)
            page.screenshot(path=png, full_page=True)
            print(f"{html} -> {png}")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
