"""Take the README's screenshot of the chat page: a real `ember serve` of the embedded default
model (SmolLM2-135M-Instruct) on loopback, a real conversation, Debian's chromium.

    python -m tests.web.make_screenshot                 # writes docs/web-ui.png
    python -m tests.web.make_screenshot --out shot.png --question "..." --question "..."
"""
from __future__ import annotations

import argparse
import os
import tempfile

from tests.server.launcher import REPO_ROOT, ServerProcess, serve_command
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

QUESTIONS = ["What is the capital of France?",
             "Write a Python function that returns the squares of a list of numbers."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "docs", "web-ui.png"))
    parser.add_argument("--question", action="append", help="a user turn (repeatable)")
    parser.add_argument("--max-tokens", default="200")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    log = os.path.join(tempfile.mkdtemp(), "server.log")
    server = ServerProcess(serve_command(), log)
    try:
        server.wait_ready()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": args.height}, color_scheme="light")
            page.set_default_timeout(120_000)
            page.goto(server.url + "/")
            page.wait_for_function("document.querySelector('#model').value !== ''")
            page.fill("#temperature", "0")
            page.dispatch_event("#temperature", "input")
            page.fill("#max-tokens", args.max_tokens)
            page.dispatch_event("#max-tokens", "input")
            for n, question in enumerate(args.question or QUESTIONS, start=1):
                page.fill("#prompt", question)
                page.press("#prompt", "Enter")
                page.wait_for_function(
                    "n => { const a = document.querySelectorAll('article.assistant');"
                    " return a.length === n && a[n - 1].getAttribute('aria-busy') === 'false'; }", arg=n)
            page.click("#prompt")
            page.screenshot(path=args.out)
            browser.close()
    finally:
        server.stop()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
