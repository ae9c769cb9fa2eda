from tunewiz.words import counted


def test_a_count_of_one_takes_the_singular_and_any_other_the_plural():
    assert counted(1, "more request") == "1 more request"
    assert counted(0, "pair") == "0 pairs"
    assert counted(2, "query", "queries") == "2 queries"
