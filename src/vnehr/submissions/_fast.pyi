"""Types of the compiled intake reader (``_fast.pyx``, D115)."""

from collections.abc import Iterable, Mapping

from lxml import etree

#: The kinds of value of ``rules.field_checks`` by name (``rules.KINDS``).
KINDS: dict[str, int]

class Plan:
    """A table's fields and the checks of each, for ``read_rows``."""

    names: tuple[str, ...]

    def __init__(
        self,
        checks: Iterable[tuple[str, bool, int | None, bool, int, int | None]],
        ignored: Iterable[str] = ...,
    ) -> None: ...

def read_rows(
    root: etree._Element,
    list_name: bytes | None,
    row_name: bytes | None,
    plan: Plan,
    beside: bytes | None = None,
) -> (
    tuple[
        list[dict[str, str]],
        list[tuple[int, str]],
        list[tuple[str, int | None, str]],
        list[tuple[str, ...] | None],
    ]
    | None
): ...
def deeper(root: etree._Element, depth: int) -> bool: ...
def money_clean(tables: Mapping[str, list[dict[str, str]]], summary: dict[str, str]) -> bool:
    """Whether ``rules.check_money_decimal`` finds nothing in the visit (False: cannot tell)."""

SOURCE_SHA256: str
