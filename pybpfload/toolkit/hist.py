"""(work in progress)"""
from typing import Any


def print_log2_hist(vals: Any, val_type: str = "value", **kw: Any) -> Any:
    raise NotImplementedError


def print_linear_hist(vals: Any, val_type: str = "value", **kw: Any) -> Any:
    raise NotImplementedError
