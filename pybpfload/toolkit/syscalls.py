"""(work in progress)"""
from typing import Optional


def syscall_name(nr: int, arch: Optional[str] = None) -> str:
    raise NotImplementedError


def syscall_number(name: str, arch: Optional[str] = None) -> int:
    raise NotImplementedError
