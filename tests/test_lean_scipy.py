"""serving.lean_scipy: the server no longer imports numpy's unused submodules, and everything
it computes, scipy's copy of numpy's namespace and numpy's own namespace are as without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from serving import lean_scipy

REPO = Path(__file__).resolve().parents[1]
# What scipy's copy of numpy's namespace imported at start-up and serving never uses.
UNUSED = ("numpy.f2py", "numpy.testing", "numpy.ma", "numpy.polynomial", "numpy.ctypeslib",
          "numpy.rec", "numpy.char", "numpy.strings", "unittest")


def python(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def imported_after(code: str) -> list[str]:
    """Which of UNUSED a fresh interpreter has imported after running ``code``."""
    out = python("-c", f"{code}\nimport json, sys\n"
                       f"print(json.dumps([m for m in {UNUSED!r} if m in sys.modules]))")
    return json.loads(out.strip().splitlines()[-1])


def test_the_server_imports_none_of_them() -> None:
    assert imported_after("import serving.serve, serving.app") == []
    # serving.app imports no scipy (a classify server needs none); its finder makes scipy's
    # copy lean whenever scipy comes later, as the other stages import it.
    assert imported_after("import serving.app, sys; assert 'scipy' not in sys.modules; "
                          "import scipy.sparse") == []
    # The control: without serving.lean_scipy scipy.sparse imports them (if this fails, scipy's
    # copy no longer does, and serving.lean_scipy can go).
    assert {"numpy.f2py", "numpy.testing", "numpy.ma"} <= set(
        imported_after("import scipy.sparse"))


def probe(mode: str, model_dir: Path) -> dict[str, Any]:
    return json.loads(python("-m", "tests.lean_scipy_probe", mode, str(model_dir)))


@pytest.mark.slow
def test_every_stage_answers_the_same_and_namespaces_are_unchanged(tiny_model_dir: Path) -> None:
    lean, plain = probe("lean", tiny_model_dir), probe("plain", tiny_model_dir)
    # classify, topics-to-knn and recommend (all their request and answer types, explain, the
    # Flask routes) imported none of them; only the plain interpreter has.
    assert [m for m in UNUSED if m in lean["modules"]] == []
    assert {"numpy.f2py", "numpy.testing"} <= set(plain["modules"])
    # The same answers (every stage, ntm-features too), the same scipy.sparse results.
    assert lean["answers"] == plain["answers"]
    assert sum("Error" not in answer for answer in lean["answers"].values()) >= 40
    assert lean["sparse_ops"] == plain["sparse_ops"]
    # numpy's __all__, dir() and its own __dir__ are back; scipy's copy lists the same names,
    # each the same object.
    for key in ("numpy_all", "numpy_dir", "namespace_all", "namespace_dir", "namespace"):
        assert lean[key] == plain[key], key
    assert lean["numpy_dir_function"] == "numpy.__dir__"
    assert {"testing", "f2py", "ma", "linalg", "fft"} <= set(lean["namespace_all"])
    assert lean["namespace"]["testing"] == "module numpy.testing"


def lazy_module() -> tuple[types.ModuleType, list[str]]:
    """A module that, like numpy, lists names in __all__ and __dir__ that its __getattr__
    creates on first access (recorded in the returned list)."""
    module = types.ModuleType("lazy")
    created: list[str] = []

    def __getattr__(name: str) -> object:
        if name in ("heavy", "other"):
            created.append(name)
            value = types.SimpleNamespace(name=name)
            setattr(module, name, value)
            return value
        raise AttributeError(name)

    def __dir__() -> list[str]:
        return sorted({*vars(module), "heavy", "other"})

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.__dir__ = __dir__  # type: ignore[method-assign]
    module.__all__ = ["eager", "heavy", "other"]
    module.eager = 1  # type: ignore[attr-defined]
    return module, created


def test_lazy_names_are_those_not_created_yet() -> None:
    module, created = lazy_module()
    assert lean_scipy.lazy_names(module) == {"heavy", "other"}
    assert created == []


def test_names_hidden_hides_and_restores_even_on_error(monkeypatch: pytest.MonkeyPatch) -> None:
    module, created = lazy_module()
    monkeypatch.setitem(sys.modules, "lazy", module)
    own_all, own_dir = module.__all__, vars(module)["__dir__"]
    hidden = frozenset({"heavy", "other"})
    with pytest.raises(RuntimeError), lean_scipy.names_hidden(module, hidden):
        assert module.__all__ == ["eager"]
        assert "heavy" not in dir(module) and "eager" in dir(module)
        star: dict[str, object] = {}
        exec("from lazy import *", star)  # what clone_module runs first
        assert [name for name in star if name != "__builtins__"] == ["eager"] and created == []
        module.other  # created meanwhile (as numpy.typing is): listed again  # noqa: B018
        assert module.__all__ == ["eager"] and "other" in dir(module)
        raise RuntimeError("the import failed")
    assert module.__all__ is own_all and vars(module)["__dir__"] is own_dir
    assert "heavy" in dir(module) and created == ["other"]


def test_add_lazy_names_resolves_on_first_access_only() -> None:
    source, created = lazy_module()
    namespace = types.ModuleType("copy")
    namespace.__all__ = ["eager"]
    namespace.eager = source.eager  # type: ignore[attr-defined]
    lean_scipy.add_lazy_names(namespace, source, frozenset({"heavy", "eager"}))
    assert namespace.__all__ == ["eager", "heavy"] and created == []
    heavy = namespace.heavy  # type: ignore[attr-defined]
    assert heavy is source.heavy and vars(namespace)["heavy"] is heavy  # cached
    assert created == ["heavy"]
    with pytest.raises(AttributeError, match="'copy' has no attribute 'missing'"):
        namespace.missing  # type: ignore[attr-defined]  # noqa: B018


def test_add_lazy_names_keeps_an_existing_module_getattr() -> None:
    source, _ = lazy_module()
    namespace = types.ModuleType("copy")
    namespace.__getattr__ = lambda name: f"own {name}"  # type: ignore[method-assign]
    lean_scipy.add_lazy_names(namespace, source, frozenset({"heavy"}))
    assert namespace.other == "own other"  # type: ignore[attr-defined]
    assert namespace.heavy is source.heavy  # type: ignore[attr-defined]


def test_import_namespace_changes_nothing_once_imported() -> None:
    namespace = sys.modules[lean_scipy.NAMESPACE]
    assert lean_scipy.import_namespace() is namespace
