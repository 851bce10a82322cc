"""The lookups CLI run in-process, as its console script runs it (``run_guarded``): exit code,
stdout and stderr."""

from __future__ import annotations

import pytest

from api.cli import app
from api.cli._common import run_guarded


def run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        run_guarded(app, args)
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return done.value.code, out, err
