"""The program sandbox against hostile programs: each escape is refused before it runs or fails
inside the limited process, the reason is kept, nothing is written, no process is started, and
this process (the worker) goes on running programs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from lookups import InvalidInputError, balanced_accuracy, check_program, run_program
from lookups.sandbox import ProgramAnswer

PROMPTS = [("the cat sat on the", ["the", " cat", " sat", " on", " the"]), ("dogs run", ["dogs", " run"])]


def program(body: str) -> str:
    return textwrap.dedent(body).strip() + "\n"


def answers(source: str, prompts=PROMPTS, **limits) -> list[ProgramAnswer]:
    return run_program(source, prompts, **limits)


def test_a_program_answers_each_prompt_with_the_tokens_it_is_given():
    source = program('''
        import re
        from math import sqrt

        def active(text, tokens):
            return bool(re.search(r"\\bthe$", text)) and tokens[-1] == " the" and sqrt(4) == 2
    ''')
    assert [a.value for a in answers(source)] == [True, False]


def test_a_thousand_prompts_run_in_one_process_within_two_seconds():
    source = program('''
        def active(text, tokens):
            return len(tokens) > 3 and "cat" in text
    ''')
    started = time.perf_counter()
    found = answers(source, PROMPTS * 500)
    elapsed = time.perf_counter() - started
    assert [a.value for a in found] == [True, False] * 500
    assert elapsed < 2.0, f"{elapsed:.2f} s"


@pytest.mark.parametrize(("source", "reason"), [
    ("import os\ndef active(t, k):\n    return True", "import of 'os'"),
    ("from os import system\ndef active(t, k):\n    return True", "import from 'os'"),
    ("import subprocess\ndef active(t, k):\n    return True", "import of 'subprocess'"),
    ("def active(t, k):\n    return __import__('os').system('touch /tmp/x') == 0", "'__import__'"),
    ("def active(t, k):\n    return __builtins__['open'] is None", "'__builtins__'"),
    ("def active(t, k):\n    return len(().__class__.__base__.__subclasses__()) > 0", "'__subclasses__'"),
    ("def active(t, k):\n    g = (x for x in [1])\n    return g.gi_frame.f_back.f_globals is None", "'f_globals'"),
    ("def active(t, k):\n    return '{0.__class__.__base__}'.format(0) == ''", "'format'"),
    ("def active(t, k):\n    return '{a.__globals__}'.format_map({'a': active}) == ''", "'format_map'"),
    ("def active(t, k):\n    return (lambda: 0).__globals__ is None", "'__globals__'"),
    ("def active(t, k):\n    try:\n        1 / 0\n    except Exception as e:\n"
     "        return e.__traceback__ is None", "'__traceback__'"),
    ("def active(t, k):\n    return int.mro() == []", "'mro'"),
    ("class M(type):\n    pass\ndef active(t, k):\n    return True", "ClassDef"),
    ("def active(t, k):\n    global x\n    return True", "Global"),
    ("def active(t, k):\n    with t:\n        return True", "With"),
    ("async def active(t, k):\n    return True", "AsyncFunctionDef"),
    ("def active(t, k):\n    yield True", "Yield"),
    ("def activ(t, k):\n    return True", "defines no function active"),
    ("def active(t, k)\n    return True", "not valid Python"),
])
def test_escapes_are_refused_before_the_program_runs(source, reason):
    with pytest.raises(InvalidInputError, match=reason.replace("(", r"\(")):
        check_program(source)
    assert all(a.value is None and reason in (a.error or "") for a in answers(source))


@pytest.mark.parametrize(("body", "reason"), [
    ("return open('{target}', 'w') is None", "NameError"),
    ("return exec('import os') is None", "NameError"),
    ("return eval('1') == 1", "NameError"),
    ("return getattr(t, 'upper') is None", "NameError"),
    ("import re\n    return re.enum.sys.modules is None", "AttributeError"),
    ("return type(t) is str", "NameError"),
    ("return 1", "returned int, not bool"),
    ("return None", "returned NoneType, not bool"),
    ("return len('a' * 10 ** 10) > 0", "out of memory"),
    ("return active(t, k)", "RecursionError"),
    ("raise ValueError('no')", "raised ValueError: no"),
])
def test_what_fails_inside_the_sandbox_is_unparseable_with_its_reason(body, reason, tmp_path):
    target = tmp_path / "written"
    found = answers(f"def active(t, k):\n    {body.format(target=target)}\n")
    assert [a.value for a in found] == [None, None]
    assert all(reason in (a.error or "") for a in found), found
    assert not target.exists()


def test_a_slow_prompt_times_out_and_the_others_are_scored():
    source = program('''
        def active(text, tokens):
            if text == "slow":
                while True:
                    pass
            return text == "yes"
    ''')
    found = answers(source, [("yes", ["yes"]), ("slow", ["slow"]), ("no", ["no"])], per_prompt_s=0.3)
    assert [a.value for a in found] == [True, None, False]
    assert "timed out" in (found[1].error or "")


def test_a_regex_that_never_ends_in_c_code_is_stopped_by_the_wall_clock():
    source = program('''
        import re

        def active(text, tokens):
            return re.match(r"(a+)+$", "a" * 40 + "b") is not None
    ''')
    started = time.perf_counter()
    found = answers(source, [("x", ["x"])], per_prompt_s=0.3)
    assert found[0].value is None and "timed out" in (found[0].error or "")
    assert time.perf_counter() - started < 5


def test_a_program_that_hangs_while_loading_answers_no_prompt():
    found = answers("while True:\n    pass\ndef active(t, k):\n    return True\n", per_prompt_s=0.3)
    assert all(a.value is None and "timed out" in (a.error or "") for a in found)


def test_the_total_time_caps_a_program_slow_on_every_prompt():
    source = "def active(t, k):\n    while True:\n        pass\n"
    started = time.perf_counter()
    found = answers(source, [("x", ["x"])] * 20, per_prompt_s=0.2, total_s=1.0)
    assert time.perf_counter() - started < 8  # 1 s, and one process start after it on a busy machine
    assert all(a.value is None for a in found)
    assert "ran out" in (found[-1].error or "")


def test_the_process_limits_refuse_files_and_processes_even_without_the_allow_list(tmp_path):
    """Defence in depth: the child's own limits, tried with unrestricted Python after them."""
    target, secret = tmp_path / "written", tmp_path / "secret"
    secret.write_text("sk-do-not-read")
    script = textwrap.dedent(f'''
        import os, socket, sys
        sys.path.insert(0, {str(sys.modules["lookups"].__path__[0])!r})
        from sandbox_child import _limit
        _limit(5, 256)
        results = []
        for attempt in (lambda: open({str(target)!r}, "w"), lambda: open({str(secret)!r}).read(),
                        lambda: socket.socket(), lambda: os.fork(), lambda: bytearray(1 << 30)):
            try:
                attempt()
                results.append("allowed")
            except (OSError, MemoryError) as error:
                results.append("OSError" if isinstance(error, OSError) else type(error).__name__)
        sys.stdout.write(",".join(results))
    ''')
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.stdout.split(",") == ["OSError"] * 4 + ["MemoryError"], done.stderr
    assert not target.exists()


def test_balanced_accuracy_counts_unanswered_prompts_as_wrong():
    yes, no, none = ProgramAnswer(value=True), ProgramAnswer(value=False), ProgramAnswer(error="x")
    assert balanced_accuracy([yes, none, no, none], [True, True, False, False]) == 0.5
    assert balanced_accuracy([yes], [True]) is None
