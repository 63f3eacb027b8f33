"""Runs the dashboard's JavaScript unit tests (tests/js/*.test.mjs) with
Node's built-in test runner, so ``python3 -m pytest -q`` covers them."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_js_unit_tests_pass_under_node():
    node = shutil.which("node")
    assert node, "node (Debian's nodejs) must be installed for the JS unit tests"
    files = sorted(glob.glob(os.path.join(REPO, "tests", "js", "*.test.mjs")))
    assert files, "no JS unit tests found"
    declared = sum(
        len(re.findall(r"^test\(", open(f, encoding="utf-8").read(), re.M))
        for f in files
    )
    run = subprocess.run(
        # TAP: the summary lines below, on every Node from Debian's 18 on.
        [node, "--test", "--test-reporter=tap", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    counts = dict(re.findall(r"^# (tests|pass|fail) (\d+)$", out, re.M))
    # Every declared test ran and passed (a file that fails to load runs none).
    assert counts == {"tests": str(declared), "pass": str(declared), "fail": "0"}, out


def test_no_dashboard_source_line_is_longer_than_100_characters():
    # prettier (.prettierrc.json, run in .ci/run) does not break long strings.
    long = []
    for path in glob.glob(os.path.join(REPO, "static", "*")) + glob.glob(
        os.path.join(REPO, "tests", "js", "*.mjs")
    ):
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if len(line.rstrip("\n")) > 100:
                    long.append(f"{os.path.relpath(path, REPO)}:{n}")
    assert not long, long
