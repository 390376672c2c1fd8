"""(work in progress)"""



def sym(addr: int, pid: int, show_module: bool = False, show_offset: bool = False) -> str:
    raise NotImplementedError


def ksym(addr: int, show_module: bool = False, show_offset: bool = False) -> str:
    raise NotImplementedError
