"""Pickle restricted to an allow-list: how scikit-learn models are saved and loaded safely.

:func:`pickle.load` runs whatever a file names: any importable function, called with any
arguments, which is how a crafted model file runs code. :func:`loads` reads the same files
(protocol 5) but admits only what rebuilding a scikit-learn, NumPy or SciPy object needs,
and refuses anything else before importing or calling it, naming it:

- **Names.** A name in the file (``module.qualname``) loads if you trust it (``trusted``),
  or if it is a class a model is made of (any scikit-learn class; NumPy's array, scalar,
  dtype and random-generator types, not ``memmap``; SciPy's sparse matrices and arrays: see
  :func:`admitted_class`), a NumPy ufunc (referenced, never called while
  loading), or a function those libraries pickle their objects with (NumPy's array, scalar
  and random-generator rebuilders, Cython's ``__pyx_unpickle_*`` helpers, scikit-learn's
  ``newObj``). Other classes (some run what their state says: a ``scipy.stats``
  distribution ``exec``s a template from it), modules, other functions (``os.system``,
  ``builtins.eval``, ``numpy.load`` ...) and anything outside the three libraries are
  refused. Only modules of those libraries are imported to look a name up, and none whose
  import runs code (``__main__`` modules, tests).
- **Calls.** Those functions and a few classes whose pickled form is a constructor call
  (``numpy.dtype``, scikit-learn's Cython types such as ``Tree`` that define their own
  ``__reduce__``, builtins such as ``slice``) are called with the file's arguments. Any
  other class is only allocated (``cls.__new__(cls)``) and given its saved state, as
  skops does: no constructor such as ``numpy.memmap(path, mode="w+")`` runs on a file's
  say.
- **State.** Saved state goes only into objects built while loading (never into a class or
  function, so a file cannot patch library code), items only into lists, dicts and sets.

:func:`dumps` checks the file it writes by loading it under the same rules, so a model that
would be refused is refused at save, naming every offending name, and returns the names the
file holds. Record them (the bundle's manifest does): given ``names``, :func:`loads` also
refuses any name not among them. Not guarded against, as with skops: an admitted type given
crafted state may misbehave when the model runs (say, out-of-range indices in a tree).

Example::

    data, names = dumps(model)         # names: ["sklearn.pipeline.Pipeline", ...]
    model = loads(data, names=names)   # UntrustedPickleError naming anything refused
"""

from __future__ import annotations

import collections
import functools
import importlib
import io
import pickle
import sys
import warnings
from collections.abc import Callable, Collection, Iterable
from typing import Any

from conveyor.types import ConveyorError

PROTOCOL = 5
LIBRARY_ROOTS = ("sklearn", "numpy", "scipy")

CALL = "call"  # may be called with the file's arguments
NEW = "new"  # a class: only allocated, then given its saved state
REF = "ref"  # referenced only (a ufunc)

_TEST_MODULES = frozenset({"tests", "conftest", "testing", "_testing"})

_BUILTIN_TYPES: dict[str, type] = {
    "builtins.slice": slice,
    "builtins.complex": complex,
    "builtins.range": range,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.bytearray": bytearray,
    "collections.OrderedDict": collections.OrderedDict,
}


class UntrustedPickleError(ConveyorError):
    """A pickle names or calls something :func:`loads` does not admit.

    ``refused`` maps each refused name to why.
    """

    def __init__(self, refused: dict[str, str]) -> None:
        self.refused = dict(refused)
        listed = "; ".join(f"{name} ({why})" for name, why in self.refused.items())
        super().__init__(f"The pickle holds what loading it must not trust: {listed}.")


def dumps(obj: Any, *, trusted: Iterable[str] = ()) -> tuple[bytes, list[str]]:
    """``obj`` pickled (protocol 5) and the sorted names the file holds; UntrustedPickleError
    listing every name :func:`loads` would refuse (with the same ``trusted``)."""
    data = pickle.dumps(obj, protocol=PROTOCOL)
    loader = _Loader(data, frozenset(trusted), names=None, collect=True)
    loader.load()
    if loader.refused:
        raise UntrustedPickleError(loader.refused)
    return data, sorted(loader.found)


def loads(data: bytes, *, trusted: Iterable[str] = (), names: Collection[str] | None = None) -> Any:
    """The object pickled in ``data``, built under the module's rules; UntrustedPickleError
    at the first refused name, before it is imported or called. ``trusted``: names
    (``module.qualname``) to admit and call as the file says; ``names``: the names the file
    is known to hold (from :func:`dumps`), any other is refused."""
    listed = None if names is None else frozenset(names)
    return _Loader(data, frozenset(trusted), names=listed, collect=False).load()


class _Refused(Exception):
    """Why a name is not admitted (internal)."""


class _Missing(_Refused):
    """The module a name is in does not import (internal)."""


class _Loader(pickle._Unpickler):
    """The pure-Python unpickler with its name lookup and every opcode that calls code or
    stores state checked (the C unpickler offers no hook for the latter)."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(
        self, data: bytes, trusted: frozenset[str], *, names: frozenset[str] | None, collect: bool
    ) -> None:
        super().__init__(io.BytesIO(data))
        self._trusted = trusted
        self._listed = names
        self._collect = collect  # record refusals and go on (checking our own file at save)
        self._rules: dict[int, tuple[Any, str, str]] = {}  # id -> (object, name, CALL/NEW/REF)
        self.found: dict[str, None] = {}
        self.refused: dict[str, str] = {}

    def find_class(self, module: str, name: str) -> Any:
        sys.audit("pickle.find_class", module, name)
        full = f"{module}.{name}"
        self.found[full] = None
        try:
            if self._listed is not None and full not in self._listed:
                raise _Refused("not among the names the manifest lists for this file")
            obj, permission = _admit(module, name, self._trusted)
        except _Refused as refusal:
            self._refuse(full, str(refusal))  # raises unless collecting
            obj, permission = pickle._Unpickler.find_class(self, module, name), CALL
        self._rules[id(obj)] = (obj, full, permission)
        return obj

    def _refuse(self, name: str, why: str) -> None:
        if not self._collect:
            raise UntrustedPickleError({name: why})
        self.refused.setdefault(name, why)

    def _rule(self, obj: Any) -> tuple[str, str] | None:
        """(name, permission) of an object find_class returned, else None."""
        rule = self._rules.get(id(obj))
        return (rule[1], rule[2]) if rule is not None and rule[0] is obj else None

    def _describe(self, obj: Any) -> str:
        rule = self._rule(obj)
        if rule is not None:
            return rule[0]
        kind = obj if isinstance(obj, type) else type(obj)
        name = f"{kind.__module__}.{kind.__qualname__}"
        return name if isinstance(obj, type) else f"an object of type {name}"

    def _check_call(self, func: Any, args: Any, kwargs: Any = None, *, new: bool) -> None:
        rule = self._rule(func)
        if rule is None:
            self._refuse(self._describe(func), "called, but it is not a name the file holds")
            return
        name, permission = rule
        if permission == CALL or (new and permission == NEW and not args and not kwargs):
            return
        self._refuse(name, "called, which only rebuilder functions and types may be")

    def _check_target(self, target: Any, kind: type, what: str) -> None:
        if not isinstance(target, kind) or self._rule(target) is not None:
            self._refuse(self._describe(target), f"given {what}; only a {kind.__name__} takes them")

    # -- opcodes that call code
    def _load_reduce(self) -> None:
        self._check_call(self.stack[-2], self.stack[-1], new=False)
        pickle._Unpickler.load_reduce(self)

    def _load_newobj(self) -> None:
        self._check_call(self.stack[-2], self.stack[-1], new=True)
        pickle._Unpickler.load_newobj(self)

    def _load_newobj_ex(self) -> None:
        self._check_call(self.stack[-3], self.stack[-2], self.stack[-1], new=True)
        pickle._Unpickler.load_newobj_ex(self)

    def _load_build(self) -> None:
        target = self.stack[-2]
        if isinstance(target, type) or self._rule(target) is not None:
            self._refuse(self._describe(target), "given state, but it is a class or function")
        pickle._Unpickler.load_build(self)

    # -- opcodes that store items: only into lists, dicts and sets
    def _load_append(self) -> None:
        self._check_target(self.stack[-2], list, "list items")
        pickle._Unpickler.load_append(self)

    def _load_appends(self) -> None:
        self._check_target(self.metastack[-1][-1], list, "list items")
        pickle._Unpickler.load_appends(self)

    def _load_setitem(self) -> None:
        self._check_target(self.stack[-3], dict, "dict items")
        pickle._Unpickler.load_setitem(self)

    def _load_setitems(self) -> None:
        self._check_target(self.metastack[-1][-1], dict, "dict items")
        pickle._Unpickler.load_setitems(self)

    def _load_additems(self) -> None:
        self._check_target(self.metastack[-1][-1], set, "set items")
        pickle._Unpickler.load_additems(self)

    def _refuse_opcode(self) -> None:
        raise UntrustedPickleError(
            {"an INST, OBJ or EXT opcode": "pickle protocol 0/1 or copyreg extension codes"}
        )

    for _code, _handler in [
        (pickle.REDUCE, _load_reduce),
        (pickle.NEWOBJ, _load_newobj),
        (pickle.NEWOBJ_EX, _load_newobj_ex),
        (pickle.BUILD, _load_build),
        (pickle.APPEND, _load_append),
        (pickle.APPENDS, _load_appends),
        (pickle.SETITEM, _load_setitem),
        (pickle.SETITEMS, _load_setitems),
        (pickle.ADDITEMS, _load_additems),
        (pickle.INST, _refuse_opcode),
        (pickle.OBJ, _refuse_opcode),
        (pickle.EXT1, _refuse_opcode),
        (pickle.EXT2, _refuse_opcode),
        (pickle.EXT4, _refuse_opcode),
    ]:
        dispatch[_code[0]] = _handler
    del _code, _handler


def _admit(module: str, name: str, trusted: frozenset[str]) -> tuple[Any, str]:
    """The object ``module.name`` stands for and what it may do; _Refused otherwise."""
    full = f"{module}.{name}"
    if full in trusted:
        return _resolve(module, name), CALL
    if full in _BUILTIN_TYPES:
        return _BUILTIN_TYPES[full], CALL
    if full in _NUMPY_RANDOM_REBUILDERS:
        return _NUMPY_RANDOM_REBUILDERS[full], CALL
    packages = module.split(".")
    if packages[0] not in LIBRARY_ROOTS:
        raise _Refused("outside scikit-learn, NumPy and SciPy, and not trusted")
    if any(part.startswith("__") or part in _TEST_MODULES for part in packages):
        raise _Refused("in a special or test module, whose import may run code")  # f2py.__main__
    parts = name.split(".")
    if any(part.startswith("__") and not part.startswith("__pyx_unpickle_") for part in parts):
        raise _Refused("a special attribute")
    return _permission(_resolve(module, name))


def _resolve(module: str, name: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core in older files
        try:
            obj: Any = importlib.import_module(module)
        except ImportError as exc:
            raise _Missing(f"its module does not import here: {exc}") from None
        for part in name.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise _Refused(f"{module} has no {name}") from None
    return obj


def _permission(obj: Any) -> tuple[Any, str]:
    """(obj, CALL/NEW/REF) for an object found under LIBRARY_ROOTS; _Refused if not admitted."""
    import numpy as np

    owner = getattr(obj, "__module__", None) or ""
    if isinstance(obj, type):
        if not admitted_class(obj):
            raise _Refused(f"a class ({owner}) outside the data types admitted by default")
        return obj, CALL if _pickles_as_call(obj) or obj in _constructor_classes() else NEW
    if isinstance(obj, np.ufunc):
        return obj, REF
    if any(obj is rebuilder for rebuilder in _numpy_rebuilders()):
        return obj, CALL
    function = getattr(obj, "__name__", "")
    cython_rebuilder = function.startswith("__pyx_unpickle_")
    sklearn_rebuilder = function == "newObj" and owner.startswith("sklearn.")
    in_library = owner.partition(".")[0] in LIBRARY_ROOTS
    if in_library and callable(obj) and (cython_rebuilder or sklearn_rebuilder):
        return obj, CALL
    kind = "a module" if type(obj) is type(sys) else f"a {type(obj).__name__}"
    raise _Refused(f"{kind}, not a class or a known rebuilder function")


def _pickles_as_call(cls: type) -> bool:
    """scikit-learn's Cython types (Tree, losses, ...) pickle as calls to themselves: a
    scikit-learn class in their MRO defines ``__reduce__``."""
    return any(
        "__reduce__" in vars(base)
        for base in cls.__mro__
        if (base.__module__ or "").startswith("sklearn.")
    )


def admitted_class(cls: type) -> bool:
    """Whether loading admits ``cls`` untrusted: any scikit-learn class; NumPy's array,
    scalar and dtype types (not ``memmap``, which maps files) and random generators; SciPy's
    sparse matrices and arrays. Not every class of NumPy and SciPy: some run what their
    state says (``scipy.stats`` distributions ``exec`` a saved template)."""
    owner = cls.__module__ or ""
    root = owner.partition(".")[0]
    if root == "sklearn":
        return True
    if root == "numpy":
        import numpy as np

        if issubclass(cls, np.memmap):
            return False
        return issubclass(cls, (np.ndarray, np.generic, np.dtype)) or owner.startswith(
            "numpy.random."
        )
    if root == "scipy":
        from scipy import sparse

        return issubclass(cls, (sparse.spmatrix, sparse.sparray))
    return False


def admits(module: str, name: str) -> bool | None:
    """Whether :func:`loads` admits ``module.name`` untrusted; None when ``module`` does not
    import (the split of a dotted name is wrong, or the library is not installed)."""
    try:
        _admit(module, name, frozenset())
        return True
    except _Missing:
        return None
    except _Refused:
        return False


@functools.cache
def _constructor_classes() -> tuple[type, ...]:
    import numpy as np

    return (np.dtype, *_BUILTIN_TYPES.values())


@functools.cache
def _numpy_rebuilders() -> tuple[Callable[..., Any], ...]:
    """The functions NumPy pickles arrays and scalars with: they build from plain data."""
    from numpy._core import multiarray, numeric
    from numpy.ma import core as masked

    return (multiarray._reconstruct, multiarray.scalar, numeric._frombuffer, masked._mareconstruct)


def _bit_generator(bit_generator: Any = "MT19937") -> Any:
    """NumPy's ``__bit_generator_ctor``, for NumPy's own bit generators only (NumPy's calls
    any class it is given)."""
    from numpy.random import _pickle
    from numpy.random import bit_generator as bit_generators

    if isinstance(bit_generator, str) and bit_generator in _pickle.BitGenerators:
        return _pickle.BitGenerators[bit_generator]()
    if (
        isinstance(bit_generator, type)
        and issubclass(bit_generator, bit_generators.BitGenerator)
        and bit_generator.__module__.startswith("numpy.")
    ):
        return bit_generator()
    raise UntrustedPickleError({repr(bit_generator): "not one of NumPy's bit generators"})


def _generator(bit_generator: Any = "MT19937", bit_generator_ctor: Any = None) -> Any:
    """NumPy's ``__generator_ctor``; ``bit_generator_ctor`` from the file is ignored."""
    from numpy.random import BitGenerator, Generator

    if isinstance(bit_generator, BitGenerator):
        return Generator(bit_generator)
    return Generator(_bit_generator(bit_generator))


def _random_state(bit_generator: Any = "MT19937", bit_generator_ctor: Any = None) -> Any:
    """NumPy's ``__randomstate_ctor``; ``bit_generator_ctor`` from the file is ignored."""
    from numpy.random import BitGenerator, RandomState

    if isinstance(bit_generator, BitGenerator):
        return RandomState(bit_generator)
    return RandomState(_bit_generator(bit_generator))


_NUMPY_RANDOM_REBUILDERS: dict[str, Callable[..., Any]] = {
    "numpy.random._pickle.__bit_generator_ctor": _bit_generator,
    "numpy.random._pickle.__generator_ctor": _generator,
    "numpy.random._pickle.__randomstate_ctor": _random_state,
}
