"""Where prompt lookup decoding takes its guesses from (the decoding itself runs in
tests/integration/test_local_llm.py, on the real model)."""

from __future__ import annotations

from plugins.backends.llama_chat import lookup_draft


def test_a_guess_follows_the_latest_earlier_occurrence_of_the_last_tokens():
    history = [5, 1, 2, 3, 9, 1, 2, 3, 7, 8, 1, 2, 3]
    assert lookup_draft(history, ngram=3, limit=2) == [7, 8]
    assert lookup_draft(history, ngram=3, limit=10) == [7, 8, 1, 2, 3]  # up to the end of the history


def test_no_guess_without_an_earlier_occurrence_or_room():
    assert lookup_draft([1, 2, 3, 4], ngram=2, limit=5) == []
    assert lookup_draft([1, 2, 1, 2], ngram=2, limit=0) == []
    assert lookup_draft([1, 2], ngram=2, limit=5) == []
