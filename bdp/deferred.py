"""Modules bdp's dependencies import eagerly, run only when something uses them.

redis-py's package imports its asyncio client (``redis.asyncio``: the client, cluster and
connection classes of a second, asynchronous stack) from its own ``__init__``, and Huey
imports redis-py; bdp only uses the synchronous client, so every command and worker paid for
both. redis-py also imports ``importlib.metadata`` (with email, zipfile and importlib.resources
under it, ~30 ms) to read its own version, which a client made without driver info never
asks for. `defer` registers such a module as a placeholder carrying the real module's spec;
the first look-up of a name in it runs the real module in place, so code that uses it works
as before, only later. Submodules import as usual (the placeholder has the package's path).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import threading
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importlib.abc imports importlib.resources: ~25 ms a command never needs
    from importlib.abc import Loader

#: Modules bdp's dependencies import eagerly that bdp's commands need late or never.
UNUSED = ("redis.asyncio", "importlib.metadata")

_LOADING = threading.RLock()
_LOADERS: dict[str, Loader] = {}  # a placeholder's name -> its real loader


class _Placeholder(types.ModuleType):
    """A module not run yet: the first missing attribute runs it (in this very object)."""

    def __getattr__(self, name: str) -> object:
        with _LOADING:
            if isinstance(self, _Placeholder):  # not run by another thread meanwhile
                module: types.ModuleType = self
                module.__class__ = types.ModuleType
                _LOADERS.pop(self.__name__).exec_module(module)
        return getattr(self, name)


def defer(name: str) -> bool:
    """Register the submodule ``name`` (``package.module``) to run on first use; False when
    it is imported already or not installed (nothing to do)."""
    parent, _, child = name.rpartition(".")
    if name in sys.modules or not parent:
        return False
    package = importlib.util.find_spec(parent)  # finds a top-level package without running it
    if package is None or package.submodule_search_locations is None:
        return False
    spec = importlib.machinery.PathFinder.find_spec(name, package.submodule_search_locations)
    if spec is None or spec.loader is None:
        return False
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _Placeholder
    _LOADERS[name] = spec.loader
    sys.modules[name] = module
    if parent in sys.modules:  # the import system binds a submodule to its parent on load
        setattr(sys.modules[parent], child, module)
    return True


def defer_unused() -> None:
    """`defer` every module of `UNUSED` (called once, when bdp is first imported)."""
    for name in UNUSED:
        defer(name)
