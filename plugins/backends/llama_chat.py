"""A thin langchain chat model over ``llama_cpp.Llama``, greedy, with first-token logprobs.

Why not ``Llama.create_chat_completion``: it returns logprobs only when the model is built with
``logits_all=True`` (logits kept for every prompt position: hundreds of MB and slower). Here we
evaluate the prompt ourselves, keeping the KV cache of the longest common prefix with the
previous prompt, and read the last position's logits directly. For a head's test prompts,
which all start with the same explanation, only each example's tokens are evaluated.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from contract import BackendError

_ROLES = {"human": "user", "ai": "assistant", "system": "system"}


class _Engine:
    """One loaded model, its chat formatter and a lock (a llama context is not thread-safe)."""

    def __init__(self, model_path: str, n_ctx: int, n_threads: int | None):
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        try:
            self.llm = llama_cpp.Llama(model_path, n_ctx=n_ctx, n_threads=n_threads, verbose=False)
        except (ValueError, OSError) as error:
            raise BackendError(f"cannot load GGUF model {model_path}: {error}") from None
        model = self.llm._model
        self.formatter = Jinja2ChatFormatter(
            self.llm.metadata.get("tokenizer.chat_template")
            or "{% for m in messages %}{{ m['content'] }}\n{% endfor %}",
            eos_token=model.token_get_text(self.llm.token_eos()),
            bos_token=model.token_get_text(self.llm.token_bos()),
        )
        self.lock = threading.Lock()


@cache
def load_engine(model_path: str, n_ctx: int, n_threads: int | None) -> _Engine:
    return _Engine(model_path, n_ctx, n_threads)


class LlamaCppChat(BaseChatModel):
    model_path: str
    n_ctx: int = 4096
    n_threads: int | None = None
    max_tokens: int = 200
    logprobs: bool = False
    top_logprobs: int = 10
    reuse_prefix: bool = True  # False only to measure what prefix reuse saves

    @property
    def _llm_type(self) -> str:
        return "llama-cpp-greedy"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        engine = load_engine(self.model_path, self.n_ctx, self.n_threads)
        chat = [{"role": _ROLES.get(m.type, "user"), "content": m.content} for m in messages]
        formatted = engine.formatter(messages=chat)
        stops = [*(formatted.stop if isinstance(formatted.stop, list) else [formatted.stop] if formatted.stop else []),
                 *(stop or [])]
        with engine.lock:
            text, top, n_prompt, n_evaluated, n_out = self._run(engine, formatted, stops)
        logprobs = {"content": [{"token": "", "logprob": 0.0, "top_logprobs": top}]} if top else None
        message = AIMessage(
            content=text,
            usage_metadata={"input_tokens": n_prompt, "output_tokens": n_out,
                            "total_tokens": n_prompt + n_out},
            response_metadata={"logprobs": logprobs, "prompt_tokens_evaluated": n_evaluated},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _run(self, engine: _Engine, formatted: Any, stops: list[str]):
        import llama_cpp
        import numpy as np

        llm = engine.llm
        tokens = llm.tokenize(formatted.prompt.encode("utf-8"),
                              add_bos=not formatted.added_special, special=True)
        if len(tokens) + self.max_tokens > self.n_ctx:
            raise BackendError(
                f"prompt of {len(tokens)} tokens + {self.max_tokens} output tokens exceeds the local "
                f"model's context n_ctx={self.n_ctx}; raise it with -o n_ctx=N"
            )
        prefix = 0 if not self.reuse_prefix else common_prefix(llm._input_ids.tolist(), tokens)
        prefix = min(prefix, len(tokens) - 1)  # the last prompt token must run to give logits
        llm.n_tokens = prefix
        llm.eval(tokens[prefix:])
        n_vocab = llm.n_vocab()
        out: list[int] = []
        top = None
        text = ""
        for step in range(self.max_tokens):
            logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,)).astype(np.float64)
            if step == 0 and self.logprobs:
                logz = logits.max() + np.log(np.exp(logits - logits.max()).sum())
                best = np.argsort(logits)[::-1][: self.top_logprobs]
                top = [{"token": llm.detokenize([int(t)]).decode("utf-8", "replace"),
                        "logprob": float(logits[t] - logz)} for t in best]
            token = int(np.argmax(logits))
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                break
            out.append(token)
            text = llm.detokenize(out).decode("utf-8", "ignore")
            cut = min((text.find(s) for s in stops if s in text), default=-1)
            if cut >= 0:
                text = text[:cut]
                break
            if step + 1 < self.max_tokens:
                llm.eval([token])
        return text, top, len(tokens), len(tokens) - prefix, len(out)


def common_prefix(previous: list[int], tokens: list[int]) -> int:
    """Length of the common prefix of the cached tokens and the new prompt."""
    n = 0
    for a, b in zip(previous, tokens):
        if a != b:
            break
        n += 1
    return n
