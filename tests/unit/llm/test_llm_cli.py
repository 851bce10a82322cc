"""``lookups classify|explain|backends|templates|explainers|scorers|run`` (its usage errors) end to
end against the loopback fake server."""

from __future__ import annotations

import json

import pytest
from cli_runner import run


def test_classify_with_labels_prints_answers_and_score(settings, fake_server, tmp_path, capsys):
    fake_server.respond = lambda prompt: "Yes" if "cat" in prompt else "No"
    prompts = tmp_path / "P.json"
    prompts.write_text(json.dumps({"token": " meow", "prompts": [
        {"text": "the cat said", "active": True}, {"text": "the dog said", "active": False},
        {"text": "a cat", "active": False}]}))
    backend = f"openai-compatible:{fake_server.url}:judge"

    code, out, err = run(["classify", "--backend", backend, "--explanation", "Cats.",
                          "--prompts-file", str(prompts), "--json"], capsys)

    report = json.loads(out)
    assert code == 0 and "3 call(s) to make" in err
    assert [r["answer"] for r in report["classification"]["results"]] == ["yes", "no", "yes"]
    assert report["score"]["score"] == pytest.approx(0.5 * (1 / 1 + 1 / 2))
    assert all("meow" in r["body"]["messages"][-1]["content"] for r in fake_server.requests)


def test_explain_dry_run_estimates_without_calling(settings, fake_server, tmp_path, capsys):
    heads = tmp_path / "head_examples.json"
    heads.write_text(json.dumps([{"token": " right", "active_examples": ["turn"],
                                  "inactive_examples": ["turn left or"]}] * 2))
    code, out, err = run(["explain", "--backend", "openai:fake-gpt", "-o", f"base_url={fake_server.url}",
                          "--input", str(heads), "--dry-run"], capsys)
    assert code == 0 and fake_server.requests == []
    assert "1 call(s) to make" in err  # the two identical requests are one call


@pytest.mark.parametrize(("args", "message"), [
    (["classify", "-b", "nope", "-e", "x", "-p", "{P}"], "unknown backend 'nope'"),
    (["classify", "-b", "local", "-e", "x", "-p", "{BAD}"], "--prompts-file"),
    (["explain", "-b", "local", "--input", "{BAD}"], "--input"),
    (["explain", "-b", "local", "--input", "{NOEX}"], "active_examples: Field required"),
    (["classify", "-b", "local", "-s", "nosuch", "-e", "x", "-p", "{P}"],
     "unknown scorer 'nosuch'; installed: causal, detection, logprob-auc, probe, program, zero-shot"),
    (["explain", "-b", "local", "-s", "nosuch", "--input", "{EX}"],
     "unknown explainer strategy 'nosuch'; installed: agent, contrastive, oneshot, program, program-agent"),
    (["explain", "-b", "local", "-s", "contrastive", "--input", "{EX}"], "use the oneshot strategy"),
    (["run", "--corpus", "{P}", "--scorer", "zero-shot", "--scorer", "nosuch"], "unknown scorer 'nosuch'"),
    (["run", "--corpus", "{P}", "--explainer-strategy", "nosuch"], "unknown explainer strategy 'nosuch'"),
])
def test_bad_input_is_one_clear_line(args, message, settings, tmp_path, capsys):
    files = {"{P}": '["some prompt"]', "{BAD}": "{not json", "{NOEX}": '{"token": " x"}',
             "{EX}": '{"token": " x", "active_examples": ["a b"]}'}
    for marker, content in files.items():
        (tmp_path / f"{marker[1:-1]}.json").write_text(content)
        args = [a.replace(marker, str(tmp_path / f"{marker[1:-1]}.json")) for a in args]
    code, out, err = run(args, capsys)
    assert code == 2 and message in " ".join(err.split()) and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 3  # one message (rich may wrap it)


def test_missing_key_is_reported_by_name(settings, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    prompts = tmp_path / "p.json"
    prompts.write_text('["some prompt"]')
    code, _, err = run(["classify", "-b", "openai:gpt-4o", "-e", "x", "-p", str(prompts)], capsys)
    assert code == 2 and "OPENAI_API_KEY" in err


def test_listings(capsys):
    code, out, _ = run(["backends", "--json"], capsys)
    assert code == 0 and {"local", "openai"} <= {b["name"] for b in json.loads(out)}
    code, out, _ = run(["templates"], capsys)
    assert code == 0 and "neo2024-v1" in out
    code, out, _ = run(["explainers", "--json"], capsys)
    assert code == 0 and {"oneshot", "contrastive", "agent"} <= {e["name"] for e in json.loads(out)}
    code, out, _ = run(["scorers"], capsys)
    assert code == 0 and all(name in out for name in ("zero-shot", "detection", "logprob-auc", "causal"))


def test_classify_with_the_detection_scorer_asks_once_per_group(settings, fake_server, tmp_path, capsys):
    fake_server.respond = lambda prompt: "1, 3"
    prompts = tmp_path / "P.json"
    prompts.write_text(json.dumps([{"text": f"prompt {i}", "active": i in (0, 2)} for i in range(4)]))
    backend = f"openai-compatible:{fake_server.url}:judge"
    code, out, err = run(["classify", "-b", backend, "-s", "detection", "-e", "x", "-p", str(prompts),
                          "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and "1 call(s) to make" in err and len(fake_server.requests) == 1
    assert [r["answer"] for r in report["classification"]["results"]] == ["yes", "no", "yes", "no"]
    assert report["score"]["score"] == 1.0 and report["classification"]["scorer"] == "detection"


def test_classify_runs_a_program_file_without_a_judge_and_refuses_a_bad_one(settings, fake_server, tmp_path, capsys):
    prompts = tmp_path / "P.json"
    prompts.write_text(json.dumps([
        {"text": "the cat said", "active": True, "pieces": ["the", " cat", " said"]},
        {"text": "a dog", "active": False, "pieces": ["a", " dog"]},
        {"text": "slow", "active": False, "pieces": ["slow"]}]))
    program = tmp_path / "F.py"
    program.write_text("def active(text, tokens):\n    if text == 'slow':\n        raise ValueError('no')\n"
                       "    return tokens[1] == ' cat'\n")
    backend = f"openai-compatible:{fake_server.url}:judge"
    code, out, err = run(["classify", "--backend", backend, "--scorer", "program", "--explanation-file",
                          str(program), "--prompts-file", str(prompts), "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and fake_server.requests == [] and "0 call(s) to make" in err
    results = report["classification"]["results"]
    assert [r["answer"] for r in results] == ["yes", "no", "unparseable"]
    assert results[2]["raw"] == "raised ValueError: no"
    assert report["score"]["score"] == pytest.approx(0.5 * (1 + 1 / 2))

    for source, reason in [("def active(text, tokens:\n", "not valid Python"),
                           ("def other(text, tokens):\n    return True\n", "defines no function active"),
                           ("import socket\ndef active(t, k):\n    return True\n", "import of 'socket'")]:
        program.write_text(source)
        code, _, err = run(["classify", "--scorer", "program", "--explanation-file", str(program),
                            "--prompts-file", str(prompts)], capsys)
        assert code == 2 and reason in " ".join(err.split()) and "Traceback" not in err
