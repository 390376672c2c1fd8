"""ELF object model (pure: bytes in, models out)."""
