"""Programs as explanations (docs/method.md, step 5 as code): each sampled program run on the
neuron's training prompts in the sandbox, the best kept; the agent's rounds scored the same way.
The held-out test prompts are never looked at here (the ``program`` scorer runs on those)."""

from __future__ import annotations

from collections.abc import Sequence

from lookups import (
    ExplainerStrategy,
    HeadExample,
    ProgramAnswer,
    ProgramExplanation,
    RoundEvaluation,
    balanced_accuracy,
    run_program,
)


def on_training(source: str | None, examples: Sequence[HeadExample]) -> tuple[float | None, list[ProgramAnswer]]:
    """The program's balanced accuracy on the training examples, and its answer on each."""
    if source is None:
        return None, []
    answers = run_program(source, [(e.text, e.pieces) for e in examples])
    return balanced_accuracy(answers, [e.active for e in examples]), answers


def best_program(strategy: ExplainerStrategy, answers: Sequence[str],
                 examples: Sequence[HeadExample]) -> ProgramExplanation:
    """The sample whose program has the best training balanced accuracy (the earliest on a
    tie; a sample without a program or an accuracy ranks last)."""
    parsed = [strategy.program(answer) for answer in answers]
    runs = [on_training(source, examples) for _, source, _ in parsed]
    accuracies = [accuracy for accuracy, _ in runs]
    best = max(range(len(parsed)), key=lambda i: (accuracies[i] if accuracies[i] is not None else -1.0, -i))
    sentence, source, error = parsed[best]
    failed = {a.error for a in runs[best][1] if a.error}
    if source is not None and len(failed) == 1 and all(a.error for a in runs[best][1]):
        error = failed.pop()  # the program did not load: every prompt has the same reason
    return ProgramExplanation(sentence=sentence, source=source, error=error, train_accuracy=accuracies[best],
                              sample=best, sample_accuracies=accuracies)


def program_evaluation(strategy: ExplainerStrategy, answer: str,
                       examples: Sequence[HeadExample]) -> RoundEvaluation:
    """An agent round's program on the training examples: correct answers and the examples it
    got wrong (an unanswered prompt is wrong), for the next round's revision."""
    _, source, _ = strategy.program(answer)
    _, answers = on_training(source, examples)
    wrong = [i for i, e in enumerate(examples) if i >= len(answers) or answers[i].value is not e.active]
    return RoundEvaluation(train_correct=len(examples) - len(wrong), train_total=len(examples),
                           probe_correct=0, probe_total=0, wrong=wrong)
