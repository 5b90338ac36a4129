"""Which checks run: ``[settings.schedule]``, ``settings.skip`` and each target's ``checks`` and
``skip`` name check ids, ``<component>.<test name without test_>``, that the suites define."""

from __future__ import annotations

from collections.abc import Collection, Iterator

from .errors import Loc, close_to, line
from .inventory import Parsed


def _unknown(check: str, known: Collection[str]) -> str:
    close = close_to(check, sorted(known))
    return "no such check" + (f" (did you mean {close!r}?)" if close else "")


def selection_problems(parsed: Parsed, check_ids: Collection[str]) -> Iterator[str]:
    """A line for each check id the inventory names that the suites do not define."""
    file = parsed.file
    if parsed.settings is not None:
        for check in parsed.settings.schedule:
            if check not in check_ids:
                yield line(file, ("settings", "schedule", check), _unknown(check, check_ids))
        for index, check in enumerate(parsed.settings.skip):
            if check not in check_ids:
                yield line(file, ("settings", "skip", index), _unknown(check, check_ids))
    for loc, target in parsed.each():
        component = str(loc[0])
        own = [c for c in check_ids if c.startswith(f"{component}.")]
        for key in ("checks", "skip"):
            for index, check in enumerate(getattr(target, key)):
                if check in own:
                    continue
                where: Loc = (*loc, key, index)
                other = check.split(".", 1)[0]
                if check in check_ids:
                    message = f"{check} is a check of [[{other}]] targets, not [[{component}]]"
                else:
                    message = _unknown(check, own)
                yield line(file, where, message)
