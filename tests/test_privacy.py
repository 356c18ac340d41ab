"""Privacy: what the redactor hides and keeps, redacted logs, batch outputs and metrics, and purging call data."""

import asyncio
import json
import logging
import os
import re
import time
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voiceagent.dialogue.slots import parse_digits
from voiceagent.errors import ConfigError
from voiceagent.privacy import (
    RedactingFilter,
    Redactor,
    luhn_valid,
    purge_call,
    purge_older_than,
    redact_logs,
)

CARD = "4111111111111111"  # Visa's test number: passes Luhn

HIDDEN = [
    ("my card number is 4111 1111 1111 1111 thanks", "my card number is [card] thanks"),
    ("4111-1111-1111-1111", "[card]"),
    ("It's 4111111111111111.", "It's [card]."),
    ("four one one one one one one one one one one one one one one one", "[card]"),
    ("my card is four one one one, double one, one one, one one one one, one one one one.", "my card is [card]."),
    ("4111 one one one one 1111 1111 111 please", "[card] please"),
    ("uh 4111 1111 um 1111 1111", "uh [card]"),
    ("5500 0000 0000 0004 is the long number", "[card] is the long number"),  # Mastercard, Luhn valid
    ("3782 822463 10005", "[card]"),  # Amex, 15 digits
    ("my visa is 4111 1111 1111 1112", "my visa is [card]"),  # Luhn fails (a digit misheard) but a card word
    ("the security code is 123", "the security code is [card]"),
    ("My card number is 4539. 1488.", "My card number is [card]."),  # a partial transcript, the card half read
    ("call me on +44 20 7946 0958", "call me on [phone]"),
    ("(555) 123-4567", "[phone]"),
    ("my number is 020 7946 0958.", "my number is [phone]."),
    ("oh seven seven double oh nine oh oh one two three", "[phone]"),
    ("07700900123", "[phone]"),
    ("jo@example.com", "[email]"),
    ("write to jo.smith+shop@mail.example.co.uk today", "write to [email] today"),
    ("email jo at example dot com please", "email [email] please"),
    ("it's jo dot smith at example dot co dot uk", "it's [email]"),
    ("jo at example.com", "[email]"),
]
KEPT = [
    "order 1234",
    "my order number is one two three four",
    "forty-five sixty-seven",
    "the postcode is SW1A 1AA",
    "S W one A one A A",
    "twenty-four pounds fifty",
    "it came to £1,234.56",
    "on 12/05/2024 at 14:30",
    "delivered 2024-05-12",
    "started 2025-01-01T12:00:00+00:00",
    "Tuesday the twenty-fifth of November twenty twenty-five",
    "ten thirty tomorrow",
    "the reference is 1234 5678 9012 3456",  # 16 digits, fails Luhn, no card word
    "1234567890123456",
    "I bought it at hollybrook dot com",
    "transfer to sip:support@127.0.0.1",
    "call 12345678-1234-1234-1234-123456789012",  # a UUID
    "my card ends in 1111",  # the last four are no card number
    "7946 0958",  # too short to tell from any other number
]


@pytest.mark.parametrize("text,redacted", HIDDEN)
def test_personal_data_is_hidden(text, redacted):
    assert Redactor().text(text) == redacted


@pytest.mark.parametrize("text", KEPT)
def test_what_the_call_flow_needs_is_kept(text):
    assert Redactor().text(text) == text


def test_only_the_kinds_asked_for_are_hidden():
    text = "card 4111 1111 1111 1111, phone 020 7946 0958, email jo@example.com"
    assert Redactor(("email",)).text(text) == "card 4111 1111 1111 1111, phone 020 7946 0958, email [email]"
    assert Redactor(("card", "phone")).text(text) == "card [card], phone [phone], email jo@example.com"
    assert Redactor(()).text(text) == text
    assert Redactor().found(text) == {"card", "phone", "email"}
    assert Redactor().found("order 1234") == set()


def test_luhn():
    assert luhn_valid(CARD) and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112") and not luhn_valid("79927398710")


def test_from_config():
    assert Redactor.from_config({"redact": ["card"]}).kinds == ("card",)
    assert Redactor.from_config({}).kinds == ("card", "phone", "email")
    assert Redactor.from_config({"redact": []}).text("4111 1111 1111 1111") == "4111 1111 1111 1111"
    with pytest.raises(ConfigError, match="unknown kind 'cards'"):
        Redactor.from_config({"redact": ["cards"]})
    with pytest.raises(ConfigError, match="must be a list"):
        Redactor.from_config({"redact": "card"})


def test_data_redacts_every_string_and_keeps_keys():
    value = {
        "turns": [{"role": "caller", "text": "it's 4111 1111 1111 1111", "sentiment": 0.5, "interrupted": False}],
        "slots": {"email": "jo@example.com", "order_number": "1234", "verified": True},
        "actions": [{"type": "transfer", "target": "sip:support@127.0.0.1"}],
        "n": 3,
        "none": None,
    }
    assert Redactor().data(value) == {
        "turns": [{"role": "caller", "text": "it's [card]", "sentiment": 0.5, "interrupted": False}],
        "slots": {"email": "[email]", "order_number": "1234", "verified": True},
        "actions": [{"type": "transfer", "target": "sip:support@127.0.0.1"}],
        "n": 3,
        "none": None,
    }


WORDS = "zero one two three four five six seven eight nine".split()


@st.composite
def card_numbers(draw) -> str:
    """A valid card number (13 to 19 digits, Luhn check digit)."""
    length = draw(st.integers(13, 19))
    body = draw(st.text("0123456789", min_size=length - 1, max_size=length - 1))
    check = next(d for d in "0123456789" if luhn_valid(body + d))
    return body + check


@st.composite
def said(draw, digits: str) -> str:
    """The digits as a caller or Whisper may put them: grouped digits, digit words (with "double" and "oh"),
    or a mix, separated by spaces, dashes or commas."""
    style = draw(st.sampled_from(["plain", "groups", "words", "mixed"]))
    if style == "plain":
        return digits
    if style == "groups":
        separator = draw(st.sampled_from([" ", "-", ", "]))
        return separator.join(digits[i : i + 4] for i in range(0, len(digits), 4))
    pieces, index = [], 0
    while index < len(digits):
        group = digits[index : index + 4]
        if style == "mixed" and draw(st.booleans()):
            pieces.append(group)
        else:
            for digit in group:
                word = "oh" if digit == "0" and draw(st.booleans()) else WORDS[int(digit)]
                pieces.append(word)
        index += 4
    return draw(st.sampled_from([" ", ", "])).join(pieces)


FILLER = st.lists(
    st.sampled_from(
        ["hello", "my", "number", "is", "order", "1234", "and", "the", "uh", "oh", "five", "twenty", "thanks", "42",
         "please", ",", ".", "SW1A", "2024-05-12", "double", "£24.99", "jo@example.com", "at"]
    ),
    max_size=8,
).map(" ".join)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_valid_card_number_in_any_text_never_keeps_its_digits(data):
    card = data.draw(card_numbers())
    text = f"{data.draw(FILLER)} {data.draw(said(card))} {data.draw(FILLER)}"
    redacted = Redactor().text(text)
    assert card not in re.sub(r"\D", "", redacted)
    assert card not in (parse_digits(redacted) or "")
    assert "[card]" in redacted


def test_logs_are_redacted_with_their_tracebacks(tmp_path):
    logger = logging.getLogger("voiceagent.test_privacy")
    handler = logging.FileHandler(tmp_path / "app.log")
    logger.addHandler(handler)
    redact_logs(Redactor(), logger)
    redact_logs(Redactor(), logger)  # once is enough
    try:
        logger.warning("caller said %s", "my card is 4111 1111 1111 1111")
        try:
            raise ValueError("bad number jo@example.com")
        except ValueError:
            logger.exception("SIP from %s", "sip:+447700900123@carrier.example")
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = (tmp_path / "app.log").read_text()
    assert "caller said my card is [card]" in text
    assert "SIP from sip:[phone]@carrier.example" in text and "ValueError: bad number [email]" in text
    assert "4111" not in text and "447700900123" not in text and "jo@" not in text
    assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1


def test_a_log_call_whose_arguments_do_not_fit_is_logged_not_raised(tmp_path):
    logger = logging.getLogger("voiceagent.test_privacy.bad_args")
    handler = logging.FileHandler(tmp_path / "app.log")
    logger.addHandler(handler)
    redact_logs(Redactor(), logger)
    try:
        logger.warning("card %s and %s", "4111 1111 1111 1111")  # one argument short
        logger.warning("no placeholder", "jo@example.com")
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = (tmp_path / "app.log").read_text()
    assert "card %s and %s" in text and "[card]" in text and "no placeholder" in text and "[email]" in text
    assert "4111" not in text and "jo@" not in text


ADVERSARIAL = {
    "underscores": "_".join("abcdefghij"[i % 10] for i in range(200)) + "!",
    "mixed separators": "a_b.c-d+e_" * 40 + " at x",
    "dots": ".".join(["a"] * 200) + "!",
    "spoken dots": " dot ".join(["a"] * 200) + " !",
    "a domain with no end": "jo at " + " dot ".join(["a"] * 200) + " 1",
    "written domain with no end": "jo@" + ".".join(["a"] * 200) + ".1",
    "ats": " at ".join(["a"] * 200),
    "spaces": "a" + " " * 2000 + "at",
    "digits": " ".join(["1"] * 400),
}


@pytest.mark.parametrize("shape", ADVERSARIAL)
def test_redaction_takes_linear_time_on_adversarial_text(shape):
    """A client's value logged on the event loop (softphone.parse_control) must not freeze it: no pattern may
    backtrack exponentially ("a_b_c..." took seconds at 24 segments)."""
    redactor = Redactor()
    started = time.perf_counter()
    redactor.text(ADVERSARIAL[shape])
    assert time.perf_counter() - started < 0.1


class FakeVad:
    def load(self):
        pass

    def speech_segments(self, audio):
        return [(0.0, 1.0)]


class FakeAsr:
    def __init__(self, text):
        self.text = text

    def load(self):
        pass

    def transcribe(self, audio):
        return SimpleNamespace(text=self.text)


def test_batch_outputs_are_redacted(tmp_path, silence):
    from voiceagent.audio import write_wav
    from voiceagent.batch import run_batch

    wav = write_wav(tmp_path / "020 7946 0958.wav", silence.slice(0, 2))  # a file named by the operator
    said = "my card number is 4111 1111 1111 1111 and my email is jo at example dot com"
    run_batch([wav], tmp_path / "out", FakeVad(), FakeAsr(said), progress=False)
    folder = tmp_path / "out" / "020 7946 0958"
    transcript = json.loads((folder / "transcript.json").read_text())
    assert transcript["turns"][0]["text"] == "my card number is [card] and my email is [email]"
    assert transcript["call"] == "020 7946 0958" and transcript["file"] == str(wav)  # names of files kept
    assert "caller: my card number is [card] and my email is [email]" in (folder / "transcript.srt").read_text()
    run_batch([wav], tmp_path / "raw", FakeVad(), FakeAsr(said), progress=False, redactor=Redactor(()))
    assert json.loads((tmp_path / "raw" / "020 7946 0958" / "transcript.json").read_text())["turns"][0]["text"] == said


class ReadBackAgent:
    """Reads back the card the caller gave, as the fact guard lets it."""

    def greet(self, state):
        pass

    def reply(self, state, text):
        if CARD not in text:
            return "Okay."
        return f"You said {CARD[:4]} {CARD[4:8]} {CARD[8:12]} {CARD[12:]}, is that your card?"


@pytest.mark.parametrize("said, silenced", [(f"my card is {CARD}", True), ("where is my order", False)])
def test_a_batch_reply_that_reads_out_a_card_is_written_as_silence(tmp_path, silence, said, silenced):
    from test_session import ToneVoice

    from voiceagent.audio import read_audio, write_wav
    from voiceagent.batch import run_batch

    write_wav(tmp_path / "call.wav", silence)
    agent, voice = ReadBackAgent(), ToneVoice()
    run_batch([tmp_path / "call.wav"], tmp_path / "out", FakeVad(), FakeAsr(said), agent, voice, progress=False)
    folder = tmp_path / "out" / "call"
    reply = json.loads((folder / "transcript.json").read_text())["replies"][0]
    audio = read_audio(folder / "reply_01.wav")
    assert audio.duration_s > 0.2 and bool(audio.samples.any()) is not silenced
    assert reply.get("audio_silenced") == ("card" if silenced else None)
    assert CARD[:4] not in (folder / "transcript.json").read_text()


def test_metrics_labels_carry_no_call_data(domain, tmp_path):
    """A call whose id is a phone number and whose caller reads out a card: neither reaches /metrics."""
    from test_recording import CARD_PHRASE, card_phrases, tone_engine
    from test_session import ToneVoice

    from voiceagent.conversation.caller import ScriptedCaller
    from voiceagent.dialogue.script import parse_line
    from voiceagent.telephony.server import TelephonyServer

    with card_phrases():
        engine = tone_engine(domain, tmp_path / "records")
        caller = ScriptedCaller(16000, realtime=False)
        open_call = engine.open_call
        engine.open_call = lambda rate, **options: open_call(rate, inline=True, clock=caller.clock, **options)
        server = TelephonyServer(engine)
        session = server.open_call("sip", 16000, call_id="+447700900123")
        caller.run(session, [parse_line(CARD_PHRASE), parse_line("where is my order")], ToneVoice(), greeting=False)
        server.call_ended(session)
    metrics = server.metrics.render().decode()
    assert 'voiceagent_turns_total{transport="sip"} 2.0' in metrics  # the replies were counted
    labels = set(re.findall(r'\w+="([^"]*)"', metrics))
    assert labels <= {"sip", "call_limit", "duplicate_call"} | {str(b) for b in (0.3, 0.5, 0.7, 0.9, 1.1, 1.5)} | {
        "2.0",
        "3.0",
        "5.0",
        "+Inf",
    }
    assert "447700900123" not in metrics and "4111" not in metrics


# Purging ---------------------------------------------------------------------------------------------------------


def make_batch_out(folder, calls, uploads=False):
    """A batch output folder with a results line and a folder per call (inputs in ``uploads/`` for a job)."""
    folder.mkdir(parents=True)
    lines = []
    for call in calls:
        (folder / call).mkdir()
        (folder / call / "transcript.json").write_text("{}")
        source = folder / "uploads" / f"{call}.wav" if uploads else folder.parent / f"{call}.wav"
        source.parent.mkdir(exist_ok=True)
        source.write_bytes(b"RIFF")
        lines.append(json.dumps({"call": call, "file": str(source), "status": "ok"}))
    (folder / "results.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_purge_call_removes_one_callers_data_everywhere(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    for name in ("abc.json", "abc.wav", "other.json", "other.wav"):
        (records / name).write_text("x")
    batch = make_batch_out(tmp_path / "batch", ["abc", "other"])
    job = make_batch_out(tmp_path / "jobs" / "job1", ["abc", "other"], uploads=True)
    removed = purge_call("abc", records, [batch, job])
    assert set(removed) == {
        records / "abc.json",
        records / "abc.wav",
        batch / "abc",
        batch / "results.jsonl",
        job / "abc",
        (job / "uploads" / "abc.wav").resolve(),
        job / "results.jsonl",
    }
    assert sorted(p.name for p in records.iterdir()) == ["other.json", "other.wav"]
    for folder in (batch, job):
        assert [json.loads(line)["call"] for line in (folder / "results.jsonl").read_text().splitlines()] == ["other"]
        assert (folder / "other").is_dir() and not (folder / "abc").exists()
    assert (tmp_path / "abc.wav").exists()  # the operator's own recording, outside the output folder, is theirs
    assert (job / "uploads" / "other.wav").exists()
    assert purge_call("abc", records, [batch, job]) == []


def test_purge_call_never_takes_a_job_folders_own_files(tmp_path):
    job = make_batch_out(tmp_path / "jobs" / "job1", ["abc"], uploads=True)
    (job / "job.json").write_text("{}")
    for name in ("uploads", "job.json", "results.jsonl"):
        assert purge_call(name, None, [job]) == []
    assert (job / "uploads" / "abc.wav").exists() and (job / "job.json").exists() and (job / "abc").is_dir()


def age(path, days):
    stamp = time.time() - days * 86400
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(item, (stamp, stamp))


def test_purge_older_than(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    for name in ("old.json", "old.wav", "new.json", "new.wav"):
        (records / name).write_text("x")
    age(records / "old.json", 40)
    age(records / "old.wav", 40)
    old_job = make_batch_out(tmp_path / "jobs" / "old", ["a"], uploads=True)
    new_job = make_batch_out(tmp_path / "jobs" / "new", ["b"], uploads=True)
    mixed = make_batch_out(tmp_path / "batch", ["old_call", "new_call"])
    age(old_job, 40)
    age(mixed / "old_call", 40)
    removed = purge_older_than(30, records, [old_job, new_job, mixed])
    assert set(removed) == {
        records / "old.json",
        records / "old.wav",
        old_job,
        mixed / "old_call",
        mixed / "results.jsonl",
    }
    assert sorted(p.name for p in records.iterdir()) == ["new.json", "new.wav"]
    assert not old_job.exists() and (new_job / "b").is_dir()
    assert [json.loads(line)["call"] for line in (mixed / "results.jsonl").read_text().splitlines()] == ["new_call"]
    assert purge_older_than(30, records, [new_job, mixed]) == []
    assert purge_older_than(30, None, [tmp_path / "missing"]) == []


def test_records_command(cli, tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    for call, started in (("call-b", "2025-01-02T10:00:00+00:00"), ("call-a", "2025-01-01T10:00:00+00:00")):
        turns = [{"role": "caller", "text": "hi"}, {"role": "agent", "text": "hello"}]
        record = {"call_id": call, "started_at": started, "transport": "sip", "end_reason": "caller hung up"}
        record.update(audio=f"{call}.wav", turns=turns)
        (records / f"{call}.json").write_text(json.dumps(record))
        (records / f"{call}.wav").write_bytes(b"RIFF")
    (records / "junk.json").write_text("not json")
    jobs = tmp_path / "jobs"
    batch = make_batch_out(tmp_path / "batch", ["call-a"])
    code, out, _ = cli("records", "list", "--records", records)
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["call-a", "call-b"]
    assert "1 caller turns" in out and "sip" in out
    code, out, _ = cli("records", "show", "call-a", "--records", records)
    assert code == 0 and json.loads(out)["call_id"] == "call-a"
    code, _, err = cli("records", "show", "nobody", "--records", records)
    assert code == 1 and "no call record 'nobody'" in err
    code, out, _ = cli(
        "records", "purge", "--call", "call-a", "--records", records, "--batch-out", batch, "--jobs", jobs
    )
    assert code == 0
    assert set(out.splitlines()) == {
        str(records / "call-a.json"),
        str(records / "call-a.wav"),
        str(batch / "call-a"),
        f"{batch / 'results.jsonl'}: the call's line",
    }
    code, out, err = cli("records", "purge", "--call", "call-a", "--records", records, "--jobs", jobs)
    assert code == 1 and out == "" and "nothing of call 'call-a' found" in err
    age(records / "call-b.json", 10)
    code, out, _ = cli("records", "purge", "--older-than", "5", "--records", records, "--jobs", jobs)
    assert code == 0 and out.splitlines() == [str(records / "call-b.json")]
    with pytest.raises(SystemExit):  # argparse: one of --call, --older-than
        cli("records", "purge", "--records", records)


def test_the_server_keeps_the_retention_period(domain, tmp_path):
    from test_recording import tone_engine

    from voiceagent.telephony.server import Listen, TelephonyServer

    records = tmp_path / "records"
    records.mkdir()
    (records / "old.json").write_text("{}")
    (records / "new.json").write_text("{}")
    age(records / "old.json", 3)
    old_job = make_batch_out(tmp_path / "jobs" / ("0" * 32), ["a"], uploads=True)  # a finished API job
    job = {"status": "done", "created_at": "2026-01-01T00:00:00+00:00", "total": 1, "inputs": [], "reply": False}
    (old_job / "job.json").write_text(json.dumps(job))
    age(old_job, 3)
    server = TelephonyServer(
        tone_engine(domain, records), api_options={"jobs": str(tmp_path / "jobs")}, retention_days=2
    )

    async def serve():
        task = asyncio.create_task(server.run(Listen(http=("127.0.0.1", 0))))  # jobs are the API's: on http
        for _ in range(100):
            await asyncio.sleep(0.05)
            if not (records / "old.json").exists() and not old_job.exists():
                break
        server.stop()
        await task

    asyncio.run(serve())
    assert sorted(p.name for p in records.iterdir()) == ["new.json"] and not old_job.exists()
