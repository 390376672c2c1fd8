"""CO-RE relocation (placeholder until the engine lands)."""

from __future__ import annotations

from typing import Any, Dict

from .errors import NotSupportedError


def relocate_object(obj: Any, ext: Any) -> Dict[int, bytes]:
    raise NotSupportedError("CO-RE relocations", "the CO-RE engine is not implemented yet")
