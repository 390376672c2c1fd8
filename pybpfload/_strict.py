"""Objects that refuse misspelt attributes (``prog.auto_load = False``).

A class built on :class:`Strict` accepts any attribute while its ``__init__``
runs; afterwards, setting a public name it does not have (not set by
``__init__``, not a class attribute or property) raises
:class:`~pybpfload.errors.UnknownAttributeError`, naming the object and the
closest valid name.  Names starting with ``_`` are never checked.
"""

from __future__ import annotations

from typing import Any, List


class _SealAfterInit(type):
    """Seals an object once constructed (every ``__init__``, a subclass's too, has run)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = super().__call__(*args, **kwargs)
        obj.__dict__["_sealed"] = True
        return obj


class Strict(metaclass=_SealAfterInit):
    """Mixin: unknown public attributes are refused once the object is built."""

    _KIND = "object"

    def _check_attr(self, key: str) -> None:
        d = self.__dict__
        if key[:1] == "_" or key in d or "_sealed" not in d or hasattr(type(self), key):
            return
        raise self._unknown_attribute(key)

    def _unknown_attribute(self, key: str) -> Exception:
        """The error for ``key``: the closest names, or every settable one."""
        import difflib

        from .errors import UnknownAttributeError

        names = self._public_names()
        close = difflib.get_close_matches(key, names, n=3)
        if close:
            hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
        else:
            hint = "its settable attributes are " + ", ".join(names)
        return UnknownAttributeError(f"{self._KIND} {self.__dict__.get('name')!r} has no attribute {key!r}; {hint}")

    def _public_names(self) -> List[str]:
        names = {k for k in self.__dict__ if not k.startswith("_")}
        cls = type(self)
        names.update(n for n in dir(cls) if not n.startswith("_") and isinstance(getattr(cls, n, None), property) and getattr(cls, n).fset)
        return sorted(names)

    def __setattr__(self, key: str, value: Any) -> None:
        self._check_attr(key)
        object.__setattr__(self, key, value)
