"""The wizard's status glyphs, with ASCII stand-ins for terminals that cannot show them.

A terminal whose locale is not UTF-8 (LANG=C over a serial line or an old SSH client)
shows "○ ◐ ▶ ● ✓ ✗ ★ █" as garbage; there every glyph is an ASCII character instead and
the boxes get ASCII borders. Python switches a plain C locale to UTF-8 for its own use
(PEP 538 sets LC_CTYPE=C.UTF-8 then), which says nothing about the terminal, so the
user's LANG decides in that case. TUNEWIZ_ASCII=1 (or 0) forces the choice. The middle dot
between parts of a line stays: Latin-1 and CP437 terminals have it too.
"""

from __future__ import annotations

import os
from typing import Mapping

UNICODE = {"todo": "○", "ready": "◐", "active": "▶", "done": "●",
           "accepted": "✓", "rejected": "✗", "pending": "·", "dup": "≈", "marked": "●",
           "best": "★", "picked": "◀", "bar": "█", "empty_bar": "·", "about": "≈"}
ASCII = {"todo": "-", "ready": "~", "active": ">", "done": "*",
         "accepted": "+", "rejected": "x", "pending": ".", "dup": "=", "marked": "#",
         "best": "*", "picked": "<", "bar": "#", "empty_bar": ".", "about": "~"}


def unicode_terminal(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the terminal's locale can show UTF-8 glyphs."""
    forced = env.get("TUNEWIZ_ASCII", "")
    if forced in ("0", "1"):
        return forced == "0"
    lang = env.get("LANG", "")
    ctype = env.get("LC_ALL") or env.get("LC_CTYPE") or lang
    if ctype == "C.UTF-8" and not env.get("LC_ALL") and lang in ("", "C", "POSIX"):
        ctype = lang  # Python's own coercion of a C locale (PEP 538), not the user's
    if not ctype:
        return True  # nothing set at all: most terminals today are UTF-8
    return "utf-8" in ctype.lower() or "utf8" in ctype.lower()


GLYPHS = UNICODE if unicode_terminal() else ASCII
"""The glyphs of this terminal, chosen once when the wizard starts."""
