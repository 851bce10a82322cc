"""Where an answer starts looping: the first run of 8 words that occurred earlier in it."""

from __future__ import annotations

from plugins.backends.llama_chat import cut_repeat, repeat_start

LOOP = 'The head is active in the document "The right" and the document "The right" and the document'


def test_a_repeated_run_is_found_at_its_second_occurrence():
    start = repeat_start(LOOP + ' "The right" and')
    assert start is not None
    kept = LOOP[:start].rstrip()
    assert kept == 'The head is active in the document "The right" and'  # the looping part once
    assert repeat_start(kept) is None


def test_seven_repeated_words_are_no_loop():
    assert repeat_start("one two three four five six seven, and one two three four five six seven") is None
    assert repeat_start("a b c d e f g h x a b c d e f g h") == len("a b c d e f g h x ")


def test_a_single_word_repeated_nine_times_loops_at_the_second_word():
    assert repeat_start("no " * 9) == len("no ")
    assert repeat_start("no " * 8) is None


def test_an_answer_ending_on_a_repeated_run_is_cut_and_says_why():
    """Qwen2.5-Coder-0.5B ended an explanation (at its end of text) by restating a clause: the
    last word completed the repeated run, after the last check during decoding."""
    answer = ('It is active in documents where the next token is " too". It is trained so, and it is '
              'only active in documents where the next token is " too".')
    kept, why = cut_repeat(answer)
    assert kept == 'It is active in documents where the next token is " too". It is trained so, and it is only'
    assert why == "began repeating a run of 8 words; the repeat was dropped"
    assert cut_repeat(kept) == (kept, None)
