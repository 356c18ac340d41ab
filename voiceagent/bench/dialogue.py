"""Dialogue-core benchmark: how fast each causal-LM runtime replies in a typical call-center exchange.

How it measures (``run_dialogue_bench``):

- One model and runtime at a time, in this process, on the CPU with ``threads`` threads: loaded (converting once
  into the cache where needed, untimed), then warmed up with one untimed reply.
- A scripted call: the agent's greeting, then ``turns`` caller lines, each followed by a scripted agent reply, so
  every runtime is given the same prompts whatever it replies itself. Before each caller line is answered, the
  call so far is packed by ``pack_prompt`` in the model's prompt style, leaving room for the reply.
- Each turn is timed twice, greedy. First as the agent speaks: the reply streamed with the style's stop strings
  into a ``ClauseSplitter``; ``first_clause_ms`` is from the call to the first complete clause (to the end of the
  reply where it has none). Then the bare token ids, up to ``max_new_tokens`` (fewer where the model ends its
  reply): ``first_token_ms`` is the prompt's cost, ``tokens_per_s`` the speed after the first token.
- Each figure is the median over the turns. ``vs transformers`` in the table is a runtime's ``tokens_per_s``
  over the transformers runtime's for the same model.

The tiny GPT-2 (random weights) measures the runtimes' own overhead more than a model's arithmetic.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from time import perf_counter

from voiceagent.bench import print_to_stderr
from voiceagent.components.lm import LanguageModel, create_lm
from voiceagent.components.lm.context import ClauseSplitter, Turn, pack_prompt, stop_strings

SYSTEM = (
    "You are Sam, a friendly agent at the call center of Northwind, an online shop. "
    "Answer in one or two short sentences."
)
FACTS = (
    "Opening hours: Monday to Friday 9 am to 6 pm, Saturday 10 am to 4 pm, closed on Sunday. "
    "Delivery takes 3 to 5 working days and is free over 50 euros. Returns are accepted within 30 days."
)
GREETING = "Thank you for calling Northwind, this is Sam. How can I help you today?"
#: (caller, agent) lines of a typical call; a longer call goes round them again.
EXCHANGE = [
    ("Hi, I'm calling about an order I placed last week.", "Of course. Could you give me your order number?"),
    ("Yes, it's four five one two seven.", "Thank you. Your order shipped yesterday and should arrive on Friday."),
    ("Can I still change the delivery address?", "It has already shipped, so I'll ask the courier to redirect it."),
    ("What are your opening hours on Saturday?", "On Saturday we are open from 10 am to 4 pm."),
    ("And how do I return a jacket that doesn't fit?", "You can return it within 30 days; I'll email you a label."),
    ("Do I have to pay for the return?", "No, returns are free of charge."),
    ("Great, thank you for your help.", "You're welcome. Have a lovely day!"),
]


def _model_reference(model: str) -> str:
    if model == "tiny-gpt2":
        from voiceagent.components.lm.tiny import tiny_gpt2_dir

        return str(tiny_gpt2_dir())
    return model


def call_prompts(lm: LanguageModel, turns: int, reply_budget: int) -> list[list[int]]:
    """The prompt before each of the agent's replies in the scripted call."""
    history = [Turn("agent", GREETING)]
    prompts = []
    for i in range(turns):
        caller, agent = EXCHANGE[i % len(EXCHANGE)]
        history.append(Turn("caller", caller))
        prompts.append(
            pack_prompt(lm.tokenizer, lm.prompt_style, SYSTEM, FACTS, history, lm.context_window, reply_budget)
        )
        history.append(Turn("agent", agent))
    return prompts


def _first_clause_ms(lm: LanguageModel, prompt: list[int], max_new_tokens: int) -> float:
    splitter = ClauseSplitter()
    start = perf_counter()
    for piece in lm.stream(prompt, max_new_tokens, stop_strings(lm.prompt_style)):
        if splitter.feed(piece):
            break  # the first clause is all that is timed here
    return (perf_counter() - start) * 1000


def _token_timing(lm: LanguageModel, prompt: list[int], max_new_tokens: int) -> tuple[float, float | None]:
    start = perf_counter()
    times = [perf_counter() for _ in lm.tokens(prompt, max_new_tokens)]
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else None
    return (times[0] - start) * 1000, rate


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def run_dialogue_bench(
    models: Sequence[str] = ("tiny-gpt2", "smollm2-135m"),
    runtimes: Sequence[str] = ("transformers", "ctranslate2"),
    turns: int = 5,
    threads: int = 2,
    max_new_tokens: int = 60,
    progress: Callable[[str], None] = print_to_stderr,
) -> dict:
    """``{"<model>/<runtime>": {"tokens_per_s", "first_token_ms", "first_clause_ms", "turns"}}``; see the module
    docstring for how each is measured."""
    results = {}
    for model in models:
        for runtime in runtimes:
            progress(f"{model}/{runtime}: loading")
            lm = create_lm(
                runtime, model=_model_reference(model), device="cpu", threads=threads, max_new_tokens=max_new_tokens
            )
            lm.load()
            prompts = call_prompts(lm, turns, max_new_tokens)
            _first_clause_ms(lm, prompts[0], max_new_tokens)  # warm-up
            _token_timing(lm, prompts[0], max_new_tokens)
            progress(f"{model}/{runtime}: {turns} turns")
            clauses, firsts, rates = [], [], []
            for prompt in prompts:
                clauses.append(_first_clause_ms(lm, prompt, max_new_tokens))
                first, rate = _token_timing(lm, prompt, max_new_tokens)
                firsts.append(first)
                rates.append(rate)
            results[f"{model}/{runtime}"] = {
                "tokens_per_s": _median(rates),
                "first_token_ms": _median(firsts),
                "first_clause_ms": _median(clauses),
                "turns": turns,
            }
            del lm  # one model in memory at a time
    return results


def format_table(results: dict) -> str:
    """The results as a Markdown table: one row a model and runtime."""
    lines = [
        "| model / runtime | tokens/s | vs transformers | first token ms | first clause ms | turns |",
        "|---|---|---|---|---|---|",
    ]

    def number(value, digits):
        return "n/a" if value is None else f"{value:.{digits}f}"

    for key, r in results.items():
        base = results.get(f"{key.rsplit('/', 1)[0]}/transformers", {}).get("tokens_per_s")
        ratio = r["tokens_per_s"] / base if base and r["tokens_per_s"] else None
        lines.append(
            f"| {key} | {number(r['tokens_per_s'], 1)} | {number(ratio, 2)} | {number(r['first_token_ms'], 0)}"
            f" | {number(r['first_clause_ms'], 0)} | {r['turns']} |"
        )
    return "\n".join(lines)
