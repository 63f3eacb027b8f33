"""The README's Python examples run as written, each as a new user runs it:
in a fresh interpreter, in an empty directory of its own; and each names
the extra it needs above it."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


def _blocks(text: str) -> list[tuple[str, str]]:
    """(the prose between the previous code block and this one, the code)
    of each ```python block."""
    out, prose = [], ""
    # Odd pieces are the code blocks: "lang\ncode".
    for i, piece in enumerate(re.split(r"^```", text, flags=re.M)):
        if i % 2 == 0:
            prose = piece
        elif piece.startswith("python\n"):
            out.append((prose, piece[len("python\n") :]))
    return out


BLOCKS = _blocks(README)
# A module a block imports -> the extras that install it (any one will do).
EXTRAS = {
    "keras": ("tensorflow", "tensorflow-cpu", "jax", "keras-torch"),
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "torch": ("torch", "lightning", "keras-torch", "transformers"),
    "transformers": ("transformers",),
    "flax": ("flax",),
    "matplotlib": ("notebook",),
    "pandas": ("notebook",),
}


def _imports(code: str) -> set[str]:
    names = set()
    for line in code.splitlines():
        if m := re.match(r"\s*import (.+)", line):
            names |= {n.strip().split(".")[0].split(" ")[0] for n in m[1].split(",")}
        elif m := re.match(r"\s*from (\S+) import", line):
            names.add(m[1].split(".")[0])
    if "to_dataframe()" in code:
        names.add("pandas")
    return names


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("before, code", BLOCKS, ids=lambda c: c.splitlines()[0][:40])
def test_readme_example_names_the_extras_it_needs(before, code):
    named = set(re.findall(r'\.\[([\w-]+)\]"', before))
    for module in sorted(_imports(code) & set(EXTRAS)):
        assert named & set(EXTRAS[module]), f"no extra for {module} above {code[:60]}"


@pytest.mark.parametrize("before, code", BLOCKS, ids=lambda c: c.splitlines()[0][:40])
def test_readme_example_runs_as_written(before, code, tmp_path):
    # A fresh interpreter in an empty directory: nothing left by another
    # example (logs/, imported modules, Keras' layer-name counters) helps.
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    work = tmp_path / "fresh"
    work.mkdir()
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    if "logs/" in code:
        assert os.listdir(work / "logs")
