"""Fingerprints of the code a step runs: its own source and, transitively, the source of
the project's functions and classes it uses.

Installed packages count by their version, the standard library not at all.  So editing
a helper the step calls changes its fingerprint; upgrading pandas does too; rerunning
the same code does not.

The graph of what a step uses is walked on every call, because a name can be bound to
new code at any time (a notebook cell redefining a helper); only the costly part, reading
and hashing one function's or class's source, is remembered, by the identity of its code
object or class, which a redefinition always replaces.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import sysconfig
import textwrap
import types
import weakref
from functools import cache, lru_cache
from typing import Any

from mlzen.steps import importable_module_name

_NON_PROJECT_ROOTS = tuple(
    {
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["platstdlib"],
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
        sys.prefix,
        sys.base_prefix,
    }
)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _is_project_module(module_name: str | None) -> bool:
    if not module_name:
        return False
    if module_name == "__main__":
        return True
    if module_name == "mlzen" or module_name.startswith("mlzen."):
        return False
    path = getattr(sys.modules.get(module_name), "__file__", None)
    if path is None:
        return False
    return not path.startswith(_NON_PROJECT_ROOTS) and "site-packages" not in path


@cache
def _distribution_of(top_level: str) -> str | None:
    from importlib import metadata

    try:  # the cheap guess first: most distributions share their import name
        return f"{top_level}=={metadata.version(top_level)}"
    except metadata.PackageNotFoundError:
        pass
    names = metadata.packages_distributions().get(top_level)
    if not names:
        return None
    try:
        return f"{names[0]}=={metadata.version(names[0])}"
    except metadata.PackageNotFoundError:
        return None


def _source(obj: Any) -> str:
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        if code is not None:
            return repr(code.co_code) + repr(code.co_consts)
        return repr(obj)


def _code_objects(code: types.CodeType) -> list[types.CodeType]:
    found = [code]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found.extend(_code_objects(const))
    return found


class _ByIdentity:
    """Values remembered for live objects by identity: a new but equal object misses.

    An entry goes when its object is garbage-collected, so redefining a function in a
    loop (or a notebook) does not grow this without bound.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref[Any], Any]] = {}

    def get(self, obj: Any) -> Any:
        entry = self._entries.get(id(obj))
        if entry is not None and entry[0]() is obj:
            return entry[1]
        return None

    def put(self, obj: Any, value: Any) -> None:
        key = id(obj)

        def forget(ref: weakref.ref[Any]) -> None:
            entry = self._entries.get(key)
            if entry is not None and entry[0] is ref:
                self._entries.pop(key, None)

        try:
            self._entries[key] = (weakref.ref(obj, forget), value)
        except TypeError:  # cannot be weakly referenced: simply not remembered
            pass


class _CodeFacts:
    """What the fingerprint needs of one code object: the names it uses and, once asked
    for, the hash of its source."""

    __slots__ = ("digest", "names")

    def __init__(self, code: types.CodeType) -> None:
        found: set[str] = set()
        for inner in _code_objects(code):
            found.update(inner.co_names)
        self.names = tuple(sorted(found))
        self.digest: str | None = None


# Remembered by code object (running a ``def`` again makes a new one) or by class, never
# by name, which a notebook cell rebinds to new code.
_code_facts = _ByIdentity()
_class_digests = _ByIdentity()


def _facts(func: types.FunctionType) -> _CodeFacts:
    code = func.__code__
    facts: _CodeFacts | None = _code_facts.get(code)
    if facts is None:
        facts = _CodeFacts(code)
        _code_facts.put(code, facts)
    return facts


def _source_digest(obj: types.FunctionType | type) -> str:
    """The hash of a function's or class's source."""
    if isinstance(obj, types.FunctionType):
        facts = _facts(obj)
        if facts.digest is None:
            facts.digest = _digest(_source(obj))
        return facts.digest
    digest: str | None = _class_digests.get(obj)
    if digest is None:
        digest = _digest(_source(obj))
        _class_digests.put(obj, digest)
    return digest


def _referenced(func: types.FunctionType) -> list[Any]:
    """Objects a function refers to by global name, attribute of a project module, or closure."""
    names = _facts(func).names
    globals_ = func.__globals__
    found: list[Any] = []
    for name in names:
        if name in globals_:
            value = globals_[name]
            found.append(value)
            if isinstance(value, types.ModuleType) and _is_project_module(value.__name__):
                found.extend(getattr(value, attr) for attr in names if hasattr(value, attr))
    for cell in func.__closure__ or ():
        try:
            found.append(cell.cell_contents)
        except ValueError:
            continue
    return found


def code_fingerprint(func: Any) -> dict[str, str]:
    """``{"module:qualname": source hash, "dist==version": ""}`` for everything ``func`` uses.

    What ``func`` uses is looked up afresh on each call, so a helper redefined since the
    last call counts with its new code; each source is read and hashed once per code
    object or class.
    """
    func = getattr(func, "func", func)  # a Step: fingerprint the function it wraps
    parts: dict[str, str] = {}
    seen: set[int] = set()
    pending: list[Any] = [func]
    while pending:
        obj = pending.pop()
        obj = getattr(obj, "func", obj) if type(obj).__name__ == "Step" else obj
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, types.MethodType):
            pending.append(obj.__func__)
            continue
        if not isinstance(obj, types.FunctionType | type):
            if isinstance(obj, types.ModuleType):
                _add_distribution(parts, obj.__name__)
            continue
        module_name = getattr(obj, "__module__", None)
        if not _is_project_module(module_name):
            _add_distribution(parts, module_name)
            continue
        key = (
            f"{importable_module_name(str(module_name))}:{getattr(obj, '__qualname__', repr(obj))}"
        )
        parts[key] = _source_digest(obj)
        if isinstance(obj, types.FunctionType):
            pending.extend(_referenced(obj))
        else:
            for member in vars(obj).values():
                inner = getattr(member, "__func__", member)
                if isinstance(inner, types.FunctionType):
                    pending.extend(_referenced(inner))
            pending.extend(base for base in obj.__mro__[1:] if base is not object)
    return parts


def _add_distribution(parts: dict[str, str], module_name: str | None) -> None:
    if not module_name:
        return
    top_level = module_name.partition(".")[0]
    if top_level in sys.stdlib_module_names or top_level == "builtins":
        return
    if top_level == "mlzen":
        return  # mlzen's own version must not invalidate users' caches on upgrade
    distribution = _distribution_of(top_level)
    if distribution:
        parts[distribution] = ""


def fingerprint_hash(parts: dict[str, str]) -> str:
    """One hash for a whole fingerprint."""
    return _digest("\n".join(f"{k}={v}" for k, v in sorted(parts.items())))


@lru_cache(maxsize=1024)
def source_of(func: Any) -> str:
    """The source text of a function, as recorded with each step run."""
    return _source(func)
