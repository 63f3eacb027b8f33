"""The package's layout: one folder per part, imports flowing one way.

faces (api, report, demo, cli, summary) -> board / writers (keras, tf, torch,
jax) -> analysis -> format. Every import in a module counts, at the top or
inside a function, so a lazy import cannot hide a wrong arrow.
"""

import ast
import pathlib
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "tb_deadneurons"
FRAMEWORKS = {"tensorflow", "keras", "torch", "jax", "flax", "lightning"}
WRITERS = {"keras", "tf", "torch", "jax"}
FACES = {"api", "report", "demo", "cli", "summary"}

# part -> the parts of tb_deadneurons it may import (besides itself).
ALLOWED = {
    "format": set(),
    "analysis": {"format"},
    "board": {"analysis", "format"},
    "keras": {"analysis", "format"},
    "tf": {"format"},
    "torch": {"analysis", "format"},
    "jax": {"analysis", "format"},
}
# part -> writers whose ``stats`` module (and nothing else of theirs) it may
# import: Keras reduces on its backend with that backend's twin of the numpy
# statistics (``keras/probe.py``).
STATS_OF = {"keras": {"tf", "jax", "torch"}}
# part -> third-party frameworks it must never import.
FORBIDDEN = {
    "format": FRAMEWORKS,
    "analysis": FRAMEWORKS,
    "board": FRAMEWORKS,
    "torch": {"tensorflow", "keras", "jax", "flax"},
    "jax": {"tensorflow", "keras", "torch", "lightning"},
    "tf": {"torch", "jax", "flax", "lightning", "keras"},
}


def _imports(path: pathlib.Path):
    """Every module name ``path`` imports, absolute (relative ones resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0]
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            if module.split(".")[0] != "tb_deadneurons":
                yield module
            else:
                # ``from tb_deadneurons[.part] import x``: x may be a submodule,
                # so the name says what is imported, not just its package.
                yield from (f"{module}.{alias.name}" for alias in node.names)


def _part_files(part: str):
    return sorted(p for p in (PACKAGE / part).rglob("*.py") if "_pb2" not in p.name)


def _own_part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "tb_deadneurons" and len(parts) > 1 else None


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_each_part_imports_only_the_parts_below_it(part):
    wrong = []
    for path in _part_files(part):
        for module in _imports(path):
            target = _own_part(module)
            if target in STATS_OF.get(part, ()) and module.split(".")[2:3] == ["stats"]:
                continue
            if target and target != part and target not in ALLOWED[part]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_no_part_imports_a_framework_it_must_not(part):
    wrong = []
    for path in _part_files(part):
        for module in _imports(path):
            top = module.split(".")[0]
            if top in FORBIDDEN[part]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
            if part in ("format", "analysis") and module.startswith(
                ("tensorboard.backend", "tensorboard.plugins", "werkzeug")
            ):
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_every_part_has_its_folder_and_no_loose_modules_remain():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top == FACES | {"__init__"}, sorted(top - FACES)
    for part in ALLOWED:
        if part == "jax" and not (PACKAGE / part).exists():
            continue
        assert (PACKAGE / part / "__init__.py").is_file(), part


def test_the_layout_test_sees_a_wrong_arrow(tmp_path, monkeypatch):
    """The walk above finds a lazy import of a writer inside a reader."""
    fake = tmp_path / "tb_deadneurons" / "board"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text(
        "def f():\n    from tb_deadneurons.keras import callback\n    import torch\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "tb_deadneurons")
    with pytest.raises(AssertionError, match="bad.py imports tb_deadneurons.keras"):
        test_each_part_imports_only_the_parts_below_it("board")
    with pytest.raises(AssertionError, match="bad.py imports torch"):
        test_no_part_imports_a_framework_it_must_not("board")
    keras = tmp_path / "tb_deadneurons" / "keras"
    keras.mkdir()
    (keras / "ok.py").write_text("from tb_deadneurons.torch import stats\n")
    test_each_part_imports_only_the_parts_below_it("keras")
    (keras / "bad.py").write_text("from tb_deadneurons.torch import monitor\n")
    with pytest.raises(AssertionError, match="bad.py imports tb_deadneurons.torch"):
        test_each_part_imports_only_the_parts_below_it("keras")
    (keras / "bad.py").write_text("import tb_deadneurons.torch\n")  # its __init__
    with pytest.raises(AssertionError, match="bad.py imports tb_deadneurons.torch"):
        test_each_part_imports_only_the_parts_below_it("keras")


def test_public_names_the_readme_uses_import_from_their_homes():
    import tb_deadneurons
    from tb_deadneurons import api, cli, events, report, summary
    from tb_deadneurons.format import events as format_events
    from tb_deadneurons.torch import DeadNeuronMonitor, revive

    assert events is format_events  # the old name still works
    assert callable(tb_deadneurons.revive) and callable(revive)
    assert callable(summary.activations) and callable(summary.activations_pb)
    assert callable(summary.revivals) and callable(summary.revivals_pb)
    assert callable(api.load) and callable(cli.main) and callable(report.to_json)
    assert DeadNeuronMonitor.__module__ == "tb_deadneurons.torch.monitor"
    assert (
        tb_deadneurons.DeadNeuronCallback.__module__ == "tb_deadneurons.keras.callback"
    )


def test_the_entry_point_names_the_loader_where_it_lives():
    from importlib import metadata

    (entry,) = [
        e
        for e in metadata.entry_points(group="tensorboard_plugins")
        if e.name == "deadneurons"
    ]
    assert entry.value == "tb_deadneurons.board.plugin:DeadNeuronsLoader"
    assert entry.load().__name__ == "DeadNeuronsLoader"
