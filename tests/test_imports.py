"""The import graph of serving/, scripts/ and standins/ has no cycles, counting every
import (a function-level import that only defers a cycle is still one).

Also: the AWS workflow CLIs in scripts/ do not import the local emulator (scripts/localsm/),
except builtin_training.py, whose `all --local` is the emulator's training; the emulator may
import the workflow modules, never the other way round.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("serving", "scripts", "standins")
# CLIs that deliberately offer a local mode (the dependency runs one way: CLI -> localsm).
LOCAL_MODE = {"scripts.builtin_training"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import, function-level ones too: a deferred import is still a dependency."""
    return [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
        edges[name] = {t for t in targets if t in known and t != name}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_is_read() -> None:
    edges = graph()
    assert "scripts.localsm.procs" in edges["scripts.localsm.runtime"]
    assert "scripts.training_jobs" in edges["scripts.localsm.training"]
    assert "scripts.localsm.cleanup" in edges["scripts.localsm.aws"]


def test_no_import_cycles() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"b"}}) is None


def test_workflow_scripts_do_not_import_the_emulator() -> None:
    edges = graph()
    for name, targets in edges.items():
        if name.startswith("scripts.") and not name.startswith("scripts.localsm"):
            emulator = {t for t in targets if t.startswith("scripts.localsm")}
            assert not emulator or name in LOCAL_MODE, f"{name} imports {sorted(emulator)}"


def test_a_classify_server_does_not_load_the_wire_formats(tiny_model_dir: Path) -> None:
    """The classify stage loads neither protobuf nor the NTM/k-NN wire-format modules (their
    memory would sit in every server's master); the other stages import them when built."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from serving.app import load_server\n"
        "from serving.config import Settings\n"
        "load_server(Settings.from_env())\n"
        "print(sorted(m for m in sys.modules if m.startswith(('google.protobuf', "
        "'serving.recordio', 'serving.formats', 'serving.npy', 'serving.neighbours'))))\n"
    )
    env = {**os.environ, "SM_MODEL_DIR": str(tiny_model_dir), "PYTHONPATH": str(REPO)}
    for stage, loaded in (("classify", False), ("topics-to-knn", True)):
        out = subprocess.run([sys.executable, "-c", code], env={**env, "SERVING_STAGE": stage},
                             capture_output=True, text=True, timeout=120, check=True).stdout
        modules = out.strip().splitlines()[-1]
        assert ("google.protobuf" in modules) is loaded, (stage, modules)


SERVED = """
import io, sys
from serving.app import create_wsgi, load_server
from serving.config import Settings

hot = create_wsgi(load_server(Settings.from_env()))
web = ("flask", "werkzeug")
before = ["scipy" in sys.modules, any(m in sys.modules for m in web)]
if sys.argv[1] == "classify":  # one post, a batch, explanations: the model's every path
    for body, attributes in ((b"orbit", ""), (b"orbit shuttle\\ncar engine\\n", ""),
                             (b"orbit shuttle\\ncar engine\\n", "explain=2")):
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/invocations",
                   "CONTENT_TYPE": "text/csv" if b"\\n" in body else "text/plain",
                   "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
                   "HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES": attributes}
        answer = []
        out = hot(environ, lambda status, headers: answer.append(status))
        assert answer == ["200 OK"], (answer, out)
after = ["scipy" in sys.modules, any(m in sys.modules for m in web)]
unused = [m for m in ("numpy.f2py", "numpy.testing", "numpy.ma") if m in sys.modules]
print(*before, *after, unused)
"""


@pytest.mark.parametrize("stage, scipy", [("classify", False), ("ntm-features", True)])
def test_what_a_server_imports_before_it_serves(tiny_model_dir: Path, stage: str,
                                                scipy: bool) -> None:
    """A classify server (with serving._wordscan) serves one post, a batch and explanations
    without scipy (its rows are CSR arrays, serving.vectorize.Rows) and without Flask or
    werkzeug (serving.flask_app, made by the first request the hot routes do not answer): ~0.2 s
    less start-up in the image. A stage that needs scipy imports it lean (serving.lean_scipy)."""
    import os
    import subprocess
    import sys

    from serving import hashtable

    if hashtable.COMPILED is None:
        pytest.fail("serving._wordscan is not built")
    env = {**os.environ, "SM_MODEL_DIR": str(tiny_model_dir), "PYTHONPATH": str(REPO),
           "SERVING_STAGE": stage}
    out = subprocess.run([sys.executable, "-c", SERVED, stage], env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == f"{scipy} False {scipy} False []"
