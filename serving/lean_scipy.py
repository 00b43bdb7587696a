"""scipy's array-API copy of numpy's namespace, imported without importing the numpy submodules
serving never uses (numpy.f2py, numpy.testing, numpy.ma, numpy.polynomial, ...): ~130 ms of
the server's start-up in the image, and their memory in every process.

``serving.app`` imports this module, which puts a finder on ``sys.meta_path`` (:func:`install`)
that makes the first import of that copy lean whenever it comes (a classify server with
serving._wordscan never imports scipy at all). Why: scipy.sparse imports
scipy's vendored ``scipy._lib.array_api_compat.numpy`` (scipy/scipy@527eb7fd, tag v1.17.1,
vendors data-apis/array-api-compat@946ce4ad, tag 1.13). That module copies numpy's namespace with
``clone_module("numpy", globals())`` (array-api-compat@946ce4ad array_api_compat/_internal.py;
the same at bbfe8c21 src/array_api_compat/_internal.py): ``exec("from numpy import *")``, then
``getattr(numpy, n)`` for every ``n`` in ``dir(numpy)``. numpy lists its public submodules in
both ``__all__`` and ``__dir__`` but imports each only when it is first accessed, through its
module ``__getattr__`` (numpy/numpy@b832a09c, tag v2.4.6, numpy/__init__.py:
``__numpy_submodules__``, ``__all__``, ``__getattr__``, ``__dir__``), so the copy imports them
all: numpy.f2py alone takes ~85 ms in the image (and imports charset_normalizer where installed).

What happens here: while that module is first imported, numpy's ``__all__`` and ``dir()`` leave
out the names numpy has not created yet (those its ``__getattr__`` would create: the submodules
nothing imported so far); numpy's own ``__all__`` and ``__dir__`` are put back right after,
whatever happens. The copy then lacks those names, so they are put back, lazily: added to the
copy's ``__all__`` again (``dir()`` and ``import *`` list the same names as without this
module), and the copy gets a module ``__getattr__`` (PEP 562) that fetches such a name from
numpy on first access, as numpy does. Every name resolves to the same object as before; only
the import of unused submodules moves to their first use, which serving never makes
(tests/test_lean_scipy.py checks both).

If scipy's copy was imported before this module (a process that imported scikit-learn first,
say), nothing is changed.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

import numpy

# scipy's copy of numpy's namespace: the module whose import runs clone_module("numpy", ...).
NAMESPACE = "scipy._lib.array_api_compat.numpy"


def lazy_names(module: ModuleType) -> frozenset[str]:
    """Public names ``module`` lists (``__all__``, ``dir()``) but has not created yet: accessing
    one runs its module ``__getattr__`` (for numpy: importing a submodule)."""
    listed = set(getattr(module, "__all__", ())) | set(dir(module))
    return frozenset(name for name in listed if name not in vars(module))


@contextmanager
def names_hidden(module: ModuleType, names: frozenset[str]) -> Iterator[None]:
    """Inside the block, ``module.__all__`` and ``dir(module)`` leave out those of ``names`` that
    are still not in the module's dict (one imported meanwhile is listed again); the module's own
    ``__all__`` and ``__dir__`` are put back afterwards, also when the block raises."""
    attributes = vars(module)
    saved = {key: attributes[key] for key in ("__all__", "__dir__") if key in attributes}
    listing: Callable[[], list[str]] = saved.get("__dir__") or (lambda: list(attributes))

    def shown(name: str) -> bool:
        return name not in names or name in attributes

    try:
        if "__all__" in saved:
            module.__all__ = [name for name in saved["__all__"] if shown(name)]
        module.__dir__ = lambda: [name for name in listing() if shown(name)]  # type: ignore
        yield
    finally:
        for key in ("__all__", "__dir__"):
            if key in saved:
                setattr(module, key, saved[key])
            else:
                attributes.pop(key, None)


def add_lazy_names(namespace: ModuleType, source: ModuleType, names: frozenset[str]) -> None:
    """List those of ``names`` that ``namespace`` lacks in its ``__all__`` again and resolve each
    from ``source`` on first access (then kept in ``namespace``); other missing names fail as
    before."""
    missing = frozenset(name for name in names if name not in vars(namespace))
    if not missing:
        return
    listed = getattr(namespace, "__all__", None)
    if listed is not None:
        namespace.__all__ = sorted(set(listed) | missing)
    fallback = vars(namespace).get("__getattr__")

    def __getattr__(name: str) -> object:
        if name in missing:
            value = getattr(source, name)
            setattr(namespace, name, value)
            return value
        if fallback is not None:
            return fallback(name)
        raise AttributeError(f"module {namespace.__name__!r} has no attribute {name!r}")

    namespace.__getattr__ = __getattr__  # type: ignore


class _LeanLoader(importlib.abc.Loader):
    """Runs the namespace module's own loader with numpy's lazy names hidden, then adds them
    back lazily (what :func:`import_namespace` does, whoever imports the module first)."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        deferred = lazy_names(numpy)
        with names_hidden(numpy, deferred):
            self.loader.exec_module(module)
        add_lazy_names(module, numpy, deferred)


class _LeanFinder(importlib.abc.MetaPathFinder):
    """On ``sys.meta_path``: the namespace module's spec, with its loader wrapped."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name != NAMESPACE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _LeanLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Make the first import of scipy's copy of numpy's namespace lean, whenever it comes: a
    server that never needs scipy (classify, with serving._wordscan) does not import it."""
    if NAMESPACE not in sys.modules and not any(
            isinstance(finder, _LeanFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _LeanFinder())


def import_namespace() -> ModuleType:
    """scipy's copy of numpy's namespace, imported (once) without importing numpy's not yet
    imported submodules."""
    install()
    return importlib.import_module(NAMESPACE)


install()
