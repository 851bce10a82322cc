"""Run an explanation's program (untrusted code an LLM wrote) on prompts, outside this process.

A program defines ``active(text: str, tokens: list[str]) -> bool``. It runs in a fresh Python
process (``lookups.sandbox_child``) that refuses what its allow-list does not know, limits its
own CPU time, memory, files and processes before the program is parsed, and answers prompt by
prompt. Here, a wall clock watches every prompt: a prompt that takes longer than
``per_prompt_s`` gets its process killed and counts as timed out, and a new process goes on
with the next prompt. A program that raises, runs out of memory or returns anything but a bool
is unparseable on that prompt, with the reason kept. docs/deploy.md says what this guarantees.
"""

from __future__ import annotations

import json
import math
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from lookups.errors import InvalidInputError
from lookups.sandbox_child import ENTRY, ProgramRefused, check_source

CHILD = Path(__file__).with_name("sandbox_child.py")
PER_PROMPT_S = 1.0
TOTAL_S = 60.0
MEMORY_MB = 256
STARTUP_S = 5.0


class ProgramAnswer(BaseModel):
    """The program's answer on one prompt: a bool, or why there is none."""

    value: bool | None = None
    error: str | None = Field(default=None, description="Why the prompt has no answer (raised, "
                              "timed out, out of memory, not a bool, the program did not load).")


def check_program(source: str) -> None:
    """``InvalidInputError`` with the reason when the program is refused before it runs:
    not valid Python, something outside the allow-list, or no ``active``."""
    try:
        check_source(source)
    except ProgramRefused as error:
        raise InvalidInputError(f"program: {error}") from None


def run_program(source: str, prompts: Sequence[tuple[str, Sequence[str]]], *,
                per_prompt_s: float = PER_PROMPT_S, total_s: float = TOTAL_S,
                memory_mb: int = MEMORY_MB) -> list[ProgramAnswer]:
    """``active(text, tokens)`` on each (text, tokens) prompt, in order; see the module."""
    try:
        check_source(source)
    except ProgramRefused as error:
        return [ProgramAnswer(error=str(error))] * len(prompts)
    answers: list[ProgramAnswer] = []
    deadline = time.monotonic() + total_s
    while len(answers) < len(prompts):
        left = deadline - time.monotonic()
        if left <= 0:
            reason = f"not run: the program's {total_s:g} s for all prompts ran out"
            answers += [ProgramAnswer(error=reason)] * (len(prompts) - len(answers))
            break
        answers += _run_from(source, prompts[len(answers):], per_prompt_s, left, memory_mb)
    return answers


def _run_from(source: str, prompts: Sequence[tuple[str, Sequence[str]]], per_prompt_s: float,
              left_s: float, memory_mb: int) -> list[ProgramAnswer]:
    """One process over the prompts until it ends or stalls: the answers it gave, then (if it
    stopped early) the prompt it stopped on, with the reason. A load failure answers every prompt."""
    job = {"source": source, "prompts": [[text, list(tokens)] for text, tokens in prompts],
           "cpu_s": max(1, math.ceil(left_s)), "memory_mb": memory_mb}
    process = subprocess.Popen(
        [sys.executable, "-I", "-S", str(CHILD)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, env={}, cwd="/", start_new_session=True, close_fds=True)
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write((json.dumps(job) + "\n").encode())
        process.stdin.close()
    except BrokenPipeError:
        pass
    answers: list[ProgramAnswer] = []
    lines = _lines(process, per_prompt_s, left_s)
    try:
        first = next(lines)
        if first is None or "loaded" not in first:
            reason = (first or {}).get("error") or _death(process, per_prompt_s, "loading the program")
            return [ProgramAnswer(error=reason)] * len(prompts)
        for line in lines:
            if line is None:
                return [*answers, ProgramAnswer(error=_death(process, per_prompt_s, "this prompt"))]
            answers.append(ProgramAnswer.model_validate(line))
            if len(answers) == len(prompts):
                break
        return answers
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def _lines(process: subprocess.Popen, per_line_s: float, left_s: float):
    """The process's JSON lines; ``None`` (then nothing) when a line takes longer than
    ``per_line_s`` or the time left, or the process ends without one."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    end = time.monotonic() + left_s
    buffer, first = b"", True
    try:
        while True:
            while b"\n" not in buffer:
                # The first line also waits for Python to start, on a machine that may be busy.
                wait = min(max(per_line_s, STARTUP_S) if first else per_line_s, end - time.monotonic())
                if wait <= 0 or not selector.select(wait):
                    process.kill()
                    yield None
                    return
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    yield None
                    return
                buffer += chunk
            line, buffer = buffer.split(b"\n", 1)
            first = False
            yield json.loads(line)
    finally:
        selector.close()


def _death(process: subprocess.Popen, per_prompt_s: float, during: str) -> str:
    """Why the process stopped answering."""
    code = process.wait()
    if code == -9:
        return f"timed out: no answer within {per_prompt_s:g} s on {during}"
    if code == -24:
        return f"over the sandbox's CPU time limit on {during}"
    return f"the sandbox process died on {during} (exit status {code})"


def balanced_accuracy(answers: Sequence[ProgramAnswer], labels: Sequence[bool]) -> float | None:
    """Mean of the hit rate on active and the correct-rejection rate on inactive prompts; a
    prompt without an answer counts as wrong. None when the labels are all one class."""
    positives = [a for a, label in zip(answers, labels, strict=True) if label]
    negatives = [a for a, label in zip(answers, labels, strict=True) if not label]
    if not positives or not negatives:
        return None
    return 0.5 * (sum(a.value is True for a in positives) / len(positives)
                  + sum(a.value is False for a in negatives) / len(negatives))


__all__ = ["ENTRY", "ProgramAnswer", "balanced_accuracy", "check_program", "run_program"]
