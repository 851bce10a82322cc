"""The docs a newcomer follows match the code: every ``lookups ...`` command line and ``--flag``
quoted in README.md and docs/*.md exists in the CLI (read from the Typer app itself), under the
name --help shows (not a hidden old spelling), every ``LOOKUPS_*`` name is a setting, and every
setting is documented."""

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from markdown_it import MarkdownIt

from api.cli import app
from services.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Flags quoted on their own that belong to another tool, with the tool.
OTHER_TOOLS = {"--test-tools": "setup.sh", "--appendonly": "redis-server"}
SEPARATORS = {"&&", "||", ";", "|", ">", "2>", "\\"}
# typer carries its own copy of click, so commands are told apart by what they have: a group
# has subcommands (``commands``), an option's ``param_type_name`` is "option".
Command = Any


def code_texts(markdown: str) -> list[str]:
    """Every code span and every line of every code block (continuation lines joined)."""
    texts = []
    for token in MarkdownIt().parse(markdown):
        if token.type in ("fence", "code_block"):
            texts += token.content.replace("\\\n", " ").splitlines()
        elif token.type == "inline":
            texts += [child.content for child in token.children or [] if child.type == "code_inline"]
    return texts


def words(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=True)
    except ValueError:  # an unbalanced quote in prose: fall back to plain words
        return text.split()


def lookups_invocations(text: str) -> list[list[str]]:
    """The words after each ``lookups`` (or ``.venv/bin/lookups``) in command position, up to
    the next shell separator."""
    found, current = [], None
    command_position = True
    for word in words(text):
        if word in SEPARATORS:
            current, command_position = None, True
        elif current is not None:
            current.append(word)
        elif command_position and word.rsplit("/", 1)[-1] == "lookups":
            current = []
            found.append(current)
        elif command_position and re.fullmatch(r"[A-Z_]+=.*", word):
            continue  # an environment assignment before the command
        else:
            command_position = False
    return found


def flag_names(word: str) -> list[str]:
    """``[--json]`` -> --json; ``--budget=5`` -> --budget; ``--ablation/--no-ablation`` -> both."""
    word = word.strip("[]()`,.:;")
    if not re.match(r"--?[a-z]", word):
        return []
    return [part.split("=", 1)[0] for part in word.split("/") if part.startswith("-")]


def command_problems(root: Command, invocation: list[str]) -> list[str]:
    """Why ``lookups INVOCATION`` does not match the CLI (empty when it does)."""
    command: Command = root
    path = ["lookups"]
    rest = list(invocation)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        names = rest.pop(0).strip("[]").split("|")
        missing = [name for name in names if name not in command.commands]
        if missing:
            return [f"{' '.join(path)} has no command {missing[0]!r}"]
        command = command.commands[names[0]]
        path.append(names[0])
    options = {name: param for param in command.params if param.param_type_name == "option"
               for name in [*param.opts, *param.secondary_opts]}
    problems = []
    for word in rest:
        for flag in flag_names(word):
            if flag not in options:
                problems.append(f"{' '.join(path)} has no option {flag}")
            elif options[flag].hidden:
                problems.append(f"{' '.join(path)} {flag} is a hidden old spelling: document the name --help shows")
    return problems


def all_options(group: Command) -> set[str]:
    names = set()
    for command in group.commands.values():
        if hasattr(command, "commands"):
            names |= all_options(command)
        names |= {name for p in command.params if p.param_type_name == "option" and not p.hidden
                  for name in [*p.opts, *p.secondary_opts]}
    return names


def doc_problems(markdown: str, root: Command) -> list[str]:
    problems = []
    known = all_options(root) | set(OTHER_TOOLS)
    for text in code_texts(markdown):
        invocations = lookups_invocations(text)
        for invocation in invocations:
            problems += [f"`{text}`: {p}" for p in command_problems(root, invocation)]
        if not invocations and text.startswith("--"):  # a flag quoted on its own
            problems += [f"`{text}`: no lookups command has {flag}" for flag in flag_names(text.split()[0])
                         if flag not in known]
    return problems


@pytest.fixture(scope="module")
def cli() -> Command:
    command = typer.main.get_command(app)
    assert hasattr(command, "commands")
    return command


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_quoted_command_and_flag_exists(doc, cli):
    assert doc_problems(doc.read_text(), cli) == []


def test_a_removed_or_renamed_flag_is_caught(cli):
    doc = ("```bash\nlookups run --corpus C --no-such-flag 3 && lookups report latest -o r.html\n```\n"
           "Then `lookups campaign statuz ID`, `lookups scan --corpus C [--frobnicate]`, and `--nope N`.\n"
           "`LOOKUPS_API_TOKENS='[\"t\"]' lookups api --port 1` and `lookups neurons --layers 27 28` are fine.\n")
    assert doc_problems(doc, cli) == [
        "`lookups run --corpus C --no-such-flag 3 && lookups report latest -o r.html`: lookups run has no "
        "option --no-such-flag",
        "`lookups campaign statuz ID`: lookups campaign has no command 'statuz'",
        "`lookups scan --corpus C [--frobnicate]`: lookups scan has no option --frobnicate",
        "`--nope N`: no lookups command has --nope",
    ]


def test_every_lookups_name_is_a_setting_and_every_setting_is_documented():
    text = "\n".join(doc.read_text() for doc in DOCS)
    settings = {f"LOOKUPS_{name.upper()}" for name in Settings.model_fields}
    assert set(re.findall(r"LOOKUPS_[A-Z0-9_]+", text)) - settings == set()
    assert {name for name in settings if name not in text} == set()
