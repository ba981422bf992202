from collections.abc import Sequence

LANES: int

def hexdigests(bodies: Sequence[bytes], /) -> list[str] | None: ...
