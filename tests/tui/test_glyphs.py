"""Which terminals get ASCII glyphs (tunewiz.tui.glyphs)."""

from tunewiz.tui.glyphs import ASCII, UNICODE, unicode_terminal


def test_the_locale_decides_and_python_s_own_coercion_does_not_count():
    assert unicode_terminal({"LANG": "en_US.UTF-8"})
    assert unicode_terminal({"LANG": "C", "LC_ALL": "de_DE.utf8"})
    assert not unicode_terminal({"LANG": "C"})
    assert not unicode_terminal({"LANG": "C", "LC_CTYPE": "C.UTF-8"})  # PEP 538's coercion of LANG=C
    assert unicode_terminal({"LANG": "en_GB.UTF-8", "LC_CTYPE": "C.UTF-8"})
    assert not unicode_terminal({"LC_ALL": "POSIX", "LANG": "en_US.UTF-8"})
    assert not unicode_terminal({"LANG": "en_US.ISO-8859-1"})
    assert unicode_terminal({})  # nothing set: today's terminals are UTF-8


def test_tunewiz_ascii_forces_the_choice():
    assert not unicode_terminal({"LANG": "en_US.UTF-8", "TUNEWIZ_ASCII": "1"})
    assert unicode_terminal({"LANG": "C", "TUNEWIZ_ASCII": "0"})


def test_every_glyph_has_a_distinct_ascii_stand_in_within_its_group():
    assert set(ASCII) == set(UNICODE) and all(v.isascii() and len(v) == 1 for v in ASCII.values())
    for group in (("todo", "ready", "active", "done"), ("accepted", "rejected", "pending")):
        assert len({ASCII[k] for k in group}) == len(group)
