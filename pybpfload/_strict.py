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
    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = super().__call__(*args, **kwargs)
        object.__setattr__(obj, "_sealed", True)
        return obj


class Strict(metaclass=_SealAfterInit):
    """Mixin: unknown public attributes are refused once the object is built."""

    _KIND = "object"

    def _check_attr(self, key: str) -> None:
        d = self.__dict__
        if key[:1] == "_" or key in d or not d.get("_sealed") or hasattr(type(self), key):
            return
        from .errors import UnknownAttributeError

        names = self._public_names()
        import difflib

        close = difflib.get_close_matches(key, names, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"its attributes: {', '.join(names)}"
        raise UnknownAttributeError(f"{self._KIND} {d.get('name')!r} has no attribute {key!r} ({hint})")

    def _public_names(self) -> List[str]:
        names = {k for k in self.__dict__ if not k.startswith("_")}
        for klass in type(self).__mro__:
            names.update(k for k, v in vars(klass).items() if not k.startswith("_") and isinstance(v, property) and v.fset is not None)
        return sorted(names)

    def __setattr__(self, key: str, value: Any) -> None:
        self._check_attr(key)
        object.__setattr__(self, key, value)
