"""Speed of the labeling page: server render time, and submit-to-next-item time in headless Chromium.

Without ``--base-url`` it builds a throwaway SQLite database seeded by
``seed_demo``, completes the demo annotators' profiles, and starts
``manage.py runserver`` (DEBUG off) on a free loopback port.

Usage::

    python bench/bench_frontend.py                      # both measurements
    python bench/bench_frontend.py --requests 500 --no-browser
    python bench/bench_frontend.py --base-url http://127.0.0.1:8000 --project 1

Aims: median render under 50 ms; median submit-to-next-item-on-screen under 100 ms.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
AIM_RENDER_MS = 50
AIM_NEXT_MS = 100
CHROMIUM = "/usr/bin/chromium"
PROFILE_SCRIPT = (
    "from django.contrib.auth import get_user_model; from annotation.services import profile_update\n"
    "for name in ('annotator', 'annotator2'):\n"
    "    profile_update(user=get_user_model().objects.get(username=name), consent=True, gender='bench')\n"
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(workdir: Path, items: int) -> tuple[subprocess.Popen, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DJANGO_DEBUG": "0",
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
    }
    manage = [PYTHON, str(REPOSITORY_ROOT / "manage.py")]
    subprocess.run(
        [*manage, "migrate", "--noinput", "-v0"], env=env, check=True, cwd=REPOSITORY_ROOT
    )
    subprocess.run(
        [*manage, "seed_demo", "--items", str(items)],
        env=env,
        check=True,
        cwd=REPOSITORY_ROOT,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        [*manage, "shell", "-c", PROFILE_SCRIPT], env=env, check=True, cwd=REPOSITORY_ROOT
    )
    port = free_port()
    server = subprocess.Popen(
        [*manage, "runserver", f"127.0.0.1:{port}", "--noreload", "--insecure"],
        env=env,
        cwd=REPOSITORY_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1).read()
            return server, base
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the server did not start")


def signed_in_opener(base: str, username: str, password: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode(
        {"username": username, "password": password, "csrfmiddlewaretoken": token}
    ).encode()
    opener.open(
        urllib.request.Request(f"{base}/login/", data=data, headers={"Referer": f"{base}/login/"})
    ).read()
    if not any(cookie.name == "sessionid" for cookie in jar):
        raise RuntimeError(f"could not sign in as {username}")
    return opener


def bench_render(
    base: str, project: int, requests: int, username: str, password: str
) -> list[float]:
    opener = signed_in_opener(base, username, password)
    url = f"{base}/projects/{project}/label/"
    for _ in range(10):  # warm the database, the template cache and the connection
        opener.open(url).read()
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        body = opener.open(url).read()
        timings.append((time.perf_counter() - started) * 1000)
        if b"ballot-boot" not in body:
            raise RuntimeError("the labeling page did not render (profile missing?)")
    return timings


def bench_next_item(
    base: str, project: int, items: int, username: str, password: str
) -> list[float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{base}/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("main button[type=submit]")
        page.wait_for_url(f"{base}/")
        page.goto(f"{base}/projects/{project}/label/")
        for _ in range(items):
            if page.locator(".done").count():
                break
            page.wait_for_selector(".question")
            # An annotator reads for seconds; 300 ms lets the lease-ahead request finish, as it would.
            page.wait_for_timeout(300)
            page.keyboard.press("1")
            page.focus(".rank-item")
            page.keyboard.press("Enter")
            page.focus(".rating-row")
            for _ in range(page.locator(".rating-row").count()):
                page.keyboard.press("4")
            count = page.evaluate("window.ballot.timings.length")
            done = page.evaluate("window.ballot.doneCount")
            page.keyboard.press("Control+Enter")
            page.wait_for_function(f"window.ballot.doneCount > {done}")
            if page.locator("#gold-continue").count():
                page.click("#gold-continue")  # a gold item's feedback is read, not timed
                page.wait_for_function(f"window.ballot.timings.length > {count}")
                page.evaluate("window.ballot.timings.pop()")
                continue
            page.wait_for_function(f"window.ballot.timings.length > {count}")
        timings = page.evaluate("window.ballot.timings")
        browser.close()
    return timings


def report(name: str, timings: list[float], aim: float) -> None:
    median = statistics.median(timings)
    verdict = "ok" if median < aim else "over aim"
    print(
        f"{name:<34} n={len(timings):<4} median {median:6.1f} ms   p95 {percentile(timings, 0.95):6.1f} ms   "
        f"max {max(timings):6.1f} ms   (aim < {aim} ms median: {verdict})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--base-url", help="a running Ballot (default: start one on a temporary database)"
    )
    parser.add_argument("--project", type=int, default=1)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ballot-bench-"))
    server = None
    try:
        base = args.base_url
        if base is None:
            server, base = start_server(workdir, args.items)
        print(f"Ballot at {base}, project {args.project}")
        report(
            "label page render (GET, loopback)",
            bench_render(base, args.project, args.requests, "annotator", "ballot-annotator"),
            AIM_RENDER_MS,
        )
        if not args.no_browser:
            if not Path(CHROMIUM).exists():
                print(f"skipping the browser measurement: no Chromium at {CHROMIUM}")
            else:
                timings = bench_next_item(
                    base, args.project, args.items, "annotator2", "ballot-annotator"
                )
                report("submit -> next item on screen", timings, AIM_NEXT_MS)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
