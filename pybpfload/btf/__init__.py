"""BTF: decode, query and (later) encode and load BPF Type Format data."""

from . import types
from .spec import BTF_MAGIC, Spec

__all__ = ["Spec", "types", "BTF_MAGIC"]
