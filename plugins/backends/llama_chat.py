"""A thin langchain chat model over ``llama_cpp.Llama``, greedy, with first-token logprobs.

Why not ``Llama.create_chat_completion``: it returns logprobs only when the model is built with
``logits_all=True`` (logits kept for every prompt position: hundreds of MB and slower). Here we
evaluate the prompt ourselves, keeping the KV cache of the longest common prefix with the
previous prompt, and read the last position's logits directly. For a head's test prompts,
which all start with the same explanation, only each example's tokens are evaluated. Decoding
checks guesses looked up in the prompt and the answer so far, several tokens per forward pass
(``LlamaCppChat._greedy``), and stops where the answer starts repeating a run of
``REPEAT_WORDS`` words, dropping the repeat (``repeat_start``). Asked for ``choices`` (a judge's
Yes or No), the answer is the choice whose first token has the largest logit after the prompt:
one of them by construction, from the same logits that give P(Yes).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from lookups import BackendError

if TYPE_CHECKING:
    import numpy as np
    from jaxtyping import Float

_ROLES = {"human": "user", "ai": "assistant", "system": "system"}
REPEAT_WORDS = 8  # a run of this many words seen twice: the answer is looping
_WORD = re.compile(r"\S+")
_PARTIAL_WORD = re.compile(r"\S+\Z")


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
    draft_tokens: int = 10  # prompt lookup guesses checked per forward pass; 0 decodes one by one
    lookup_ngram: int = 3  # how many of the latest tokens a guess must follow

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
        pick = sampler(kwargs.get("temperature"), kwargs.get("seed", 0))
        with engine.lock:
            text, top, n_prompt, n_evaluated, n_out, passes, cut = self._run(
                engine, formatted, stops, kwargs.get("choices"), pick)
        logprobs = {"content": [{"token": "", "logprob": 0.0, "top_logprobs": top}]} if top else None
        message = AIMessage(
            content=text,
            usage_metadata={"input_tokens": n_prompt, "output_tokens": n_out,
                            "total_tokens": n_prompt + n_out},
            response_metadata={"logprobs": logprobs, "prompt_tokens_evaluated": n_evaluated,
                               "decode_passes": passes, "cut": cut},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _run(self, engine: _Engine, formatted: Any, stops: list[str], choices: list[str] | None, pick: Pick):
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
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
        firsts = choice_tokens(llm, choices) if choices else []
        top = top_logprobs(llm, logits, self.top_logprobs, also=firsts) if self.logprobs else None
        if choices:
            best = max(range(len(choices)), key=lambda i: logits[firsts[i]])
            return choices[best], top, len(tokens), len(tokens) - prefix, 1, 0, None
        out: list[int] = []
        text, passes = "", 0
        for token, passes in self._greedy(llm, logits, list(tokens), pick):
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                break
            out.append(token)
            text = llm.detokenize(out).decode("utf-8", "ignore")
            stop = min((text.find(s) for s in stops if s in text), default=-1)
            if stop >= 0:
                text = text[:stop]
                break
            if repeat_start(_PARTIAL_WORD.sub("", text)) is not None:  # the last word may still grow
                break
            if len(out) == self.max_tokens:
                break
        text, cut = cut_repeat(text)  # also a run that the answer's last word completed
        return text, top, len(tokens), len(tokens) - prefix, len(out), passes, cut

    def _greedy(self, llm: Any, logits: Float[np.ndarray, " vocab"],
                history: list[int], pick: Pick) -> Iterator[tuple[int, int]]:
        """Greedy tokens after the prompt, each with the forward passes run so far after the
        prompt's; a token is evaluated only when the next one is asked for.

        Prompt lookup decoding: after a token, the tokens that followed the last occurrence of the
        latest ``lookup_ngram`` tokens (in the prompt or the answer so far) are evaluated with it
        in one batch, and kept as far as greedy decoding would have chosen them. A small model
        repeating itself, or quoting its examples, then gets many tokens per forward pass, and a
        batch runs on every thread where one token runs on ``n_threads``. The answer is greedy
        decoding's up to rounding: llama.cpp computes a batch with other kernels than one token,
        so near-ties can break the other way (F16 weights: logits differ by about 0.03, and the
        README campaign's 24 explanations came out the same; the packaged Q4_1 file: by up to
        0.8, and 13 of 24 came out the same).

        ``pick`` chooses each token from its logits: argmax, or a sample (``sampler``). A guess is
        kept while the token picked at its position equals it, so sampling stays exact too.
        """
        last = len(history) + self.max_tokens  # the history's length once the answer is at its cap
        passes = 0
        while True:
            token = pick(logits)
            yield token, passes
            history.append(token)
            draft = lookup_draft(history, self.lookup_ngram, min(self.draft_tokens, last - len(history)))
            rows = eval_with_logits(llm, [token, *draft])
            passes += 1
            accepted = 0
            while accepted < len(draft) and pick(rows[accepted]) == draft[accepted]:
                accepted += 1
            llm.n_tokens -= len(draft) - accepted  # the rejected guesses leave the cache
            for guess in draft[:accepted]:
                yield guess, passes
                history.append(guess)
            logits = rows[accepted]


Pick = Callable[[Any], int]  # logits of one position -> the token chosen


def sampler(temperature: float | None, seed: int) -> Pick:
    """Greedy (argmax) without a temperature or at 0; else a draw from softmax(logits / T)
    with a generator seeded by ``seed``, so a sample index always gives the same answer."""
    import numpy as np

    if not temperature:
        return lambda logits: int(logits.argmax())
    rng = np.random.default_rng(seed)

    def draw(logits: Float[np.ndarray, " vocab"]) -> int:
        scaled = logits.astype(np.float64) / temperature
        weights = np.exp(scaled - scaled.max())
        return int(rng.choice(len(weights), p=weights / weights.sum()))

    return draw


def eval_with_logits(llm: Any, tokens: list[int]) -> Float[np.ndarray, "n vocab"]:
    """``Llama.eval`` of one batch, keeping the logits of every position (``eval`` keeps the last)."""
    import numpy as np

    n_past = llm.n_tokens
    llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
    llm._batch.set_batch(batch=tokens, n_past=n_past, logits_all=True)
    llm._ctx.decode(llm._batch)
    llm.input_ids[n_past:n_past + len(tokens)] = tokens
    llm.n_tokens = n_past + len(tokens)
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(tokens), llm.n_vocab())).copy()


def lookup_draft(history: list[int], ngram: int, limit: int) -> list[int]:
    """Up to ``limit`` tokens that followed the latest earlier occurrence of the history's last
    ``ngram`` tokens; none if they never occurred before."""
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view

    if limit <= 0 or len(history) <= ngram:
        return []
    tokens = np.asarray(history)
    earlier = sliding_window_view(tokens[:-1], ngram)  # row i: tokens[i:i + ngram], followed by more
    hits = np.flatnonzero((earlier == tokens[-ngram:]).all(axis=1))
    if not hits.size:
        return []
    start = int(hits[-1]) + ngram
    return tokens[start:start + limit].tolist()


def top_logprobs(llm: Any, logits: Float[np.ndarray, " vocab"], n: int, also: list[int]) -> list[dict]:
    """The ``n`` likeliest first tokens with their log-probabilities (what OpenAI's API returns),
    and the tokens ``also`` (the choices' first tokens, so P(Yes) is known however unlikely)."""
    import numpy as np

    logits = logits.astype(np.float64)
    logz = logits.max() + np.log(np.exp(logits - logits.max()).sum())
    best = [int(t) for t in np.argsort(logits)[::-1][:n]]
    best += [t for t in dict.fromkeys(also) if t not in best]
    return [{"token": llm.detokenize([t]).decode("utf-8", "replace"), "logprob": float(logits[t] - logz)}
            for t in best]


def choice_tokens(llm: Any, choices: list[str]) -> list[int]:
    """Each choice's first token as the answer's first token; choices must differ in it."""
    firsts = [llm.tokenize(choice.encode("utf-8"), add_bos=False, special=False)[0] for choice in choices]
    if len(set(firsts)) < len(firsts):
        raise BackendError(f"local backend: the choices {choices} share a first token, which is how "
                           f"it tells them apart")
    return firsts


def cut_repeat(text: str) -> tuple[str, str | None]:
    """``text`` up to its first repeated run of ``REPEAT_WORDS`` words, and why it was cut (None:
    it was not)."""
    start = repeat_start(text)
    if start is None:
        return text, None
    return text[:start].rstrip(), f"began repeating a run of {REPEAT_WORDS} words; the repeat was dropped"


def repeat_start(text: str, words: int = REPEAT_WORDS) -> int | None:
    """Where ``text`` first repeats itself: the offset of the first run of ``words`` words (split
    on whitespace) that occurred earlier in it, overlapping or not; None if none did."""
    spans = [match.span() for match in _WORD.finditer(text)]
    tokens = [text[start:end] for start, end in spans]
    seen: set[tuple[str, ...]] = set()
    for i in range(len(tokens) - words + 1):
        run = tuple(tokens[i:i + words])
        if run in seen:
            return spans[i][0]
        seen.add(run)
    return None


def common_prefix(previous: list[int], tokens: list[int]) -> int:
    """Length of the common prefix of the cached tokens and the new prompt."""
    n = 0
    for a, b in zip(previous, tokens):
        if a != b:
            break
        n += 1
    return n
