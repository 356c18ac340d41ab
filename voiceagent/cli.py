"""The ``voiceagent`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

from voiceagent import config as config_module
from voiceagent.errors import VoiceAgentError


def _print_error(message: str) -> None:
    print(f"voiceagent: {message}", file=sys.stderr)


def cmd_transcribe(args, config) -> int:
    from voiceagent.audio import read_audio

    asr = config_module.build_asr(config, model=args.model, backend=args.backend, device=args.device)
    asr.load()
    failed = 0
    for file in args.files:
        try:
            transcript = asr.transcribe(read_audio(file), language=args.language)
        except VoiceAgentError as exc:
            failed += 1
            _print_error(f"{file}: {exc}")
            if args.json:
                print(json.dumps({"file": file, "error": str(exc)}), flush=True)
            continue
        if args.json:
            print(json.dumps({"file": file, **transcript.to_dict()}, ensure_ascii=False), flush=True)
        else:
            print(f"{file}: {transcript.text}" if len(args.files) > 1 else transcript.text, flush=True)
    return 1 if failed else 0


def cmd_say(args, config) -> int:
    from voiceagent.audio import write_wav

    audio = config_module.build_tts(config, backend=args.tts, voice=args.voice).speak(args.text, args.rate)
    if audio.duration_s == 0:
        raise VoiceAgentError("nothing to say: the text is empty")
    write_wav(args.output, audio)
    print(f"{args.output}: {audio.duration_s:.2f} s at {audio.sample_rate} Hz", file=sys.stderr)
    return 0


def cmd_batch(args, config) -> int:
    from voiceagent.batch import build_stages, run_batch

    stages = dict(config=config, model=args.model, domain=args.domain, reply=not args.no_reply, no_lm=args.no_lm)
    redactor = _log_to_stderr(config, "WARNING")
    if args.ray:
        from voiceagent.cluster import run_batch_on_ray

        stages["domain"] = str(config_module.domain_path(config, args.domain).resolve())  # workers run elsewhere
        run = run_batch_on_ray(
            args.inputs, Path(args.out), stages, args.ray, args.ray_workers, not args.quiet, redactor=redactor
        )
        for worker in run.workers:
            print(
                f"ray worker {worker['pid']} on {worker['host']}: {worker['calls']} calls in {worker['busy_s']:.1f} s,"
                f" models loaded {worker['stage_builds']}x in {worker['load_s']:.1f} s",
                file=sys.stderr,
            )
        results = run.results
    else:
        results = run_batch(
            args.inputs, Path(args.out), *build_stages(**stages), progress=not args.quiet, redactor=redactor
        )
    failed = sum(r["status"] == "error" for r in results)
    print(
        f"{len(results) - failed} calls done, {failed} failed; results in {Path(args.out) / 'results.jsonl'}",
        file=sys.stderr,
    )
    return 1 if failed else 0


def _log_to_stderr(config: dict, level: str):
    """Log lines to stderr, each redacted as [privacy] says; the redactor."""
    import logging

    from voiceagent.privacy import Redactor, redact_logs

    redactor = Redactor.from_config(config["privacy"])
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    redact_logs(redactor)
    return redactor


def cmd_chat(args, config) -> int:
    from voiceagent.dialogue.script import parse_line, read_script
    from voiceagent.dialogue.state import CallState

    agent = config_module.build_agent(config, args.domain, args.runtime, args.model, args.no_lm)
    state = CallState()
    show = (lambda role, text: None) if args.json else (lambda role, text: print(f"{role}: {text}", flush=True))
    show("agent", agent.greet(state))
    if args.script:
        turns = iter(read_script(args.script))
    else:
        turns = (parse_line(line) for line in _prompted_lines())
    for turn in turns:
        if args.script:
            show("caller", turn.text if turn.dtmf is None else f"[keys {turn.dtmf}]")
        show("agent", agent.reply(state, turn.text, turn.dtmf))
        if state.ended:
            break
    if args.json:
        print(state.to_json())
    return 0


def _prompted_lines():
    while True:
        try:
            yield input("caller: ")
        except EOFError:
            return


def cmd_models(args, config) -> int:
    from voiceagent.models import KNOWN_MODELS

    rows = [m.to_dict() for m in KNOWN_MODELS]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("stage", "name", "installed", "size_mb", "license", "devices", "source")
    table = [header] + [tuple(str(r[k] if r[k] is not None else "-") for k in header) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def cmd_bench_asr(args, config) -> int:
    from voiceagent.bench.asr import format_table, run_asr_bench

    results = run_asr_bench(
        Path(args.manifest), backends=args.backends, model=args.model, telephone=args.telephone, limit=args.limit
    )
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 0


def cmd_bench_dialogue(args, config) -> int:
    from voiceagent.bench.dialogue import format_table, run_dialogue_bench

    results = run_dialogue_bench(models=args.models, runtimes=args.runtimes, turns=args.turns, threads=args.threads)
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 0


def cmd_bench_latency(args, config) -> int:
    from voiceagent.bench.latency import DEFAULT_CALL, format_table, run_latency_bench

    result = run_latency_bench(config, Path(args.call) if args.call else DEFAULT_CALL)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


def cmd_bench_calls(args, config) -> int:
    from voiceagent.bench.calls import format_table, run_calls_bench

    results = run_calls_bench(config, args.levels, Path(args.call) if args.call else None, args.start_every)
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 0


def cmd_bench_batch(args, config) -> int:
    from voiceagent.bench.batch import DEFAULT_INPUTS, format_table, run_batch_bench

    result = run_batch_bench(
        config, args.inputs or DEFAULT_INPUTS, args.ray, args.ray_workers, repeat=args.repeat, runs=args.runs
    )
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


#: Names `talk` gives the marks of a reply's latency, where it shortens them.
LATENCY_NAMES = {"reply_start": "start", "first_audio_ready": "tts", "first_audio": "playout"}


class TalkView:
    """A live call in the terminal: the caller's words as they are recognised (in place on a terminal), then a
    line for each thing said and each reply's latency. Called from the session's threads."""

    def __init__(self, out=None, redactor=None):
        self.out = out or sys.stdout
        self.tty = self.out.isatty()
        # On a terminal the caller reads their own words as they say them (nothing is kept, and they see whether
        # their number was heard right); written to a file or a pipe, the lines are redacted like any log.
        self.redactor = None if self.tty else redactor
        self._lock = threading.Lock()
        self._partial_shown = False

    def __call__(self, kind: str, data: dict) -> None:
        if kind == "partial" and self.tty:
            with self._lock:
                self.out.write(f"\r\x1b[Kcaller: {data['text']}")
                self.out.flush()
                self._partial_shown = True
            return
        line = self.line(kind, data)
        if line is None:
            return
        if self.redactor is not None:
            line = self.redactor.text(line)
        with self._lock:
            if self._partial_shown:
                self.out.write("\r\x1b[K")
                self._partial_shown = False
            print(line, file=self.out, flush=True)

    @staticmethod
    def line(kind: str, data: dict) -> str | None:
        if kind == "partial":
            return f"caller (so far): {data['text']}"
        if kind == "caller":
            return f"caller: {data['text']}" if "text" in data else f"caller: [keys {data['dtmf']}]"
        if kind == "agent":
            return f"agent: {data['text']}"
        if kind == "interrupted":
            return f"[interrupted] heard: {data['heard']}"
        if kind == "resumed":
            return f"[resumed after: {data['text']}]"
        if kind == "latency":  # each mark is ms from the end of the caller's speech; shown: each stage's own
            parts, before = [], 0.0
            for key, ms in data.items():
                if key != "voice_to_voice_ms":
                    mark = key.removesuffix("_ms")
                    parts.append(f"{LATENCY_NAMES.get(mark, mark.replace('_', ' '))} {ms - before:.0f}")
                    before = ms
            return f"latency: voice-to-voice {data['voice_to_voice_ms']:.0f} ms ({', '.join(parts)})"
        if kind == "ended":
            return f"[call ended: {data['reason']}]"
        return None


def cmd_talk(args, config) -> int:
    import dataclasses

    from voiceagent.conversation.session import Engine
    from voiceagent.transports import local

    if args.list_devices:
        print(local.format_devices(local.list_devices(args.backend)))
        return 0
    if args.domain:
        config = {**config, "dialogue": {**config["dialogue"], "domain": args.domain}}
    records = Path(args.records)
    redactor = _log_to_stderr(config, "WARNING")
    # The devices first: a wrong one is reported before the models load.
    with local.LocalLine(args.backend, args.input_device, args.output_device, args.sample_rate) as line:
        engine = Engine.from_config(config, records=records, no_lm=args.no_lm)
        engine.rules = dataclasses.replace(engine.rules, echo_guard=args.echo)
        view = TalkView(redactor=redactor)
        session = engine.open_call(line.sample_rate, transport=f"local {args.backend}", on_event=view)
        print(
            f"talking: microphone {line.input.name}, speaker {line.output.name}, {line.sample_rate} Hz "
            f"({args.backend}); Ctrl-C hangs up",
            file=sys.stderr,
            flush=True,
        )
        record = line.run(session)
    print(f"call record: {records / (record['call_id'] + '.json')}", file=sys.stderr)
    return 0


def cmd_serve(args, config) -> int:
    import asyncio
    import logging

    from voiceagent.conversation.session import Engine
    from voiceagent.telephony.server import Listen, TelephonyServer, address

    _log_to_stderr(config, "INFO")
    for noisy in ("faster_whisper", "bm25s"):  # a line per decode, per index
        logging.getLogger(noisy).setLevel(logging.WARNING)
    serve = config["serve"]

    def listener(option: str | None, key: str):
        value = serve[key] if option is None else option
        return address(value) if value else None

    tls = (serve["tls_cert"], serve["tls_key"]) if serve["tls_cert"] or serve["tls_key"] else None
    listen = Listen(
        listener(args.sip, "sip"), listener(args.audiosocket, "audiosocket"), listener(args.http, "http"), tls
    )
    engine = Engine.from_config(config, records=Path(serve["records"]), no_lm=args.no_lm)
    server = TelephonyServer(
        engine,
        max_calls=serve["max_calls"],
        sip_options=config["sip"],
        api_options=config["api"],
        retention_days=config["privacy"]["retention_days"],
    )
    asyncio.run(server.run(listen))
    return 0


def cmd_records(args, config) -> int:
    from voiceagent import privacy

    records = Path(args.records or config["serve"]["records"])
    if args.records_command == "list":
        for record in privacy.records_in(records):
            turns = sum(t.get("role") == "caller" for t in record.get("turns", []))
            audio = record.get("audio", "-")
            print(
                f"{record['call_id']}  {record.get('started_at', '-')}  {record.get('transport') or '-'}  "
                f"{turns} caller turns  {record.get('end_reason') or 'in progress'}  audio: {audio}"
            )
        return 0
    if args.records_command == "show":
        path = records / f"{privacy.record_name(args.id)}.json"
        if not path.is_file():
            _print_error(f"no call record {args.id!r} in {records}")
            return 1
        print(path.read_text(encoding="utf-8"))
        return 0
    jobs = Path(args.jobs or config["api"]["jobs"])
    outputs = [Path(folder) for folder in args.batch_out] + privacy.job_folders(jobs)
    if args.call is not None:
        removed = privacy.purge_call(args.call, records, outputs)
    else:
        removed = privacy.purge_older_than(args.older_than, records, outputs)
    for path in removed:
        print(f"{path}: the call's line" if path.name == "results.jsonl" and args.call else path)
    if not removed and args.call is not None:
        places = ", ".join(str(p) for p in [records, *outputs])
        _print_error(f"nothing of call {args.call!r} found in {places}")
        return 1
    if not removed:
        print(f"nothing older than {args.older_than:g} days", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voiceagent", description="A self-hosted voice call-center agent.")
    parser.add_argument("--config", help="a TOML file laid over the defaults (see configs/)")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("transcribe", help="speech to text for audio files")
    p.add_argument("files", nargs="+")
    p.add_argument("--json", action="store_true", help="one JSON object per file and line")
    p.add_argument("--model", help="tiny.en, base, or a model folder")
    p.add_argument("--backend", choices=["faster-whisper", "openai-whisper"])
    p.add_argument("--device", choices=["cpu", "cuda", "auto"])
    p.add_argument("--language", help="e.g. en; detected when not given (multilingual models)")
    p.set_defaults(run=cmd_transcribe)

    p = commands.add_parser("say", help="text to speech into a WAV file")
    p.add_argument("text")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--tts", choices=["piper", "espeak", "coqui"], help="the TTS backend")
    p.add_argument("--voice", help="piper: joe or an .onnx path; espeak: a voice such as en-us or fr")
    p.add_argument("--rate", type=int, help="resample to this rate, e.g. 8000 for a phone line")
    p.set_defaults(run=cmd_say)

    p = commands.add_parser("batch", help="transcribe recorded calls in bulk, resumably")
    p.add_argument("inputs", nargs="+", help="audio files or folders of them")
    p.add_argument("--out", required=True, help="output folder (results.jsonl and one folder per call)")
    p.add_argument("--model", help="the ASR model")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-reply", action="store_true", help="transcribe only: no agent replies")
    p.add_argument("--no-lm", action="store_true", help="replies from rules, tools and the knowledge base only")
    p.add_argument("--domain", help="the domain the agent answers for (default: configs/domains/shop.toml)")
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="process the calls on a Ray cluster (HOST:PORT of its head; alone: a local one for this run)",
    )
    p.add_argument("--ray-workers", type=int, metavar="N", help="Ray workers, each its models (default: one per CPU)")
    p.set_defaults(run=cmd_batch)

    p = commands.add_parser("chat", help="a text conversation with the agent, the agent greeting first")
    p.add_argument("--domain", help="a domain TOML (default: configs/domains/shop.toml)")
    p.add_argument("--model", help="the language model: smollm2-135m, or a model folder (GPT-2, any chat LM)")
    p.add_argument("--runtime", choices=["ctranslate2", "transformers"], help="the language model's runtime")
    p.add_argument("--no-lm", action="store_true", help="rules, tools and the knowledge base only")
    p.add_argument("--script", help="caller lines from a file (DTMF:1234# for keys) instead of the keyboard")
    p.add_argument("--json", action="store_true", help="print the final call state as JSON")
    p.set_defaults(run=cmd_chat)

    p = commands.add_parser("talk", help="a spoken call with the agent on this computer's microphone and speaker")
    p.add_argument("--backend", choices=["sounddevice", "pyaudio"], default="sounddevice", help="the PortAudio binding")
    p.add_argument("--input-device", help="the microphone: a number or (part of) a name (default: the system's)")
    p.add_argument("--output-device", help="the speaker: a number or (part of) a name (default: the system's)")
    p.add_argument("--list-devices", action="store_true", help="list the audio devices and exit")
    p.add_argument("--sample-rate", type=int, help="the devices' rate (default: the microphone's own)")
    p.add_argument(
        "--echo",
        choices=["off", "guard", "half-duplex"],
        default="guard",
        help="the microphone hears the speaker: guard (speech over the agent counts when louder than it), "
        "half-duplex (no listening while the agent speaks), off (a headset)",
    )
    p.add_argument("--records", default="records", help="the folder for call records (default: records)")
    p.add_argument("--no-lm", action="store_true", help="rules, tools and the knowledge base only")
    p.add_argument("--domain", help="a domain TOML (default: configs/domains/shop.toml)")
    p.set_defaults(run=cmd_talk)

    p = commands.add_parser("serve", help="answer phone calls: SIP, Asterisk AudioSocket, Twilio Media Streams")
    p.add_argument("--sip", help="HOST:PORT for SIP over UDP ('' for none; default from [serve])")
    p.add_argument("--audiosocket", help="HOST:PORT for Asterisk AudioSocket ('' for none)")
    p.add_argument("--http", help="HOST:PORT for /health, /metrics and the /media WebSocket ('' for none)")
    p.add_argument("--no-lm", action="store_true", help="rules, tools and the knowledge base only")
    p.set_defaults(run=cmd_serve)

    records = commands.add_parser("records", help="call records: list, show, purge").add_subparsers(
        dest="records_command", required=True
    )
    records_help = "the folder of call records (default: [serve] records)"
    p = records.add_parser("list", help="every call record: id, start, transport, turns, end")
    p.add_argument("--records", help=records_help)
    p.set_defaults(run=cmd_records)
    p = records.add_parser("show", help="one call record, as JSON")
    p.add_argument("id", help="the call id")
    p.add_argument("--records", help=records_help)
    p.set_defaults(run=cmd_records)
    p = records.add_parser("purge", help="delete one caller's data everywhere, or everything older than N days")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--call", help="the call id: its record, its audio, and its outputs in batch folders")
    which.add_argument("--older-than", type=float, metavar="DAYS", help="every record and job older than this")
    p.add_argument("--records", help=records_help)
    p.add_argument("--batch-out", action="append", default=[], metavar="DIR", help="a `voiceagent batch --out` folder")
    p.add_argument("--jobs", help="the API's jobs folder, every job in it (default: [api] jobs)")
    p.set_defaults(run=cmd_records)

    p = commands.add_parser("models", help="the models voiceagent knows, and whether they are installed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_models)

    bench = commands.add_parser("bench", help="measure speed and accuracy").add_subparsers(dest="bench", required=True)
    p = bench.add_parser("asr", help="WER and real-time factor of each ASR backend beside bare faster-whisper")
    p.add_argument("--manifest", required=True, help="JSONL: id, audio, start, end, text")
    p.add_argument("--backends", nargs="+", default=["faster-whisper", "openai-whisper"])
    p.add_argument("--model", default="tiny.en")
    p.add_argument("--telephone", action="store_true", help="8 kHz mu-law, as a phone call delivers it")
    p.add_argument("--limit", type=int, help="only the first N clips")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_bench_asr)
    p = bench.add_parser("dialogue", help="tokens/s and time to first clause of each language model and runtime")
    p.add_argument("--models", nargs="+", default=["tiny-gpt2", "smollm2-135m"])
    p.add_argument("--runtimes", nargs="+", default=["transformers", "ctranslate2"])
    p.add_argument("--turns", type=int, default=5, help="caller turns of the scripted call, each timed")
    p.add_argument("--threads", type=int, default=1, help="threads for each runtime (the [lm] default is 1)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_bench_dialogue)
    p = bench.add_parser("latency", help="voice-to-voice latency of a live call, beside a naive sequential pipeline")
    p.add_argument("--call", help="a caller script (default: configs/calls/latency_call.txt)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_bench_latency)
    p = bench.add_parser("calls", help="concurrent phone calls one `voiceagent serve` answers (SIPp callers)")
    p.add_argument("--levels", nargs="+", type=int, default=[1, 2, 4, 8, 12], help="numbers of calls at once")
    p.add_argument("--call", help="a caller script, one turn a line (default: an order-status call)")
    p.add_argument(
        "--start-every", type=float, default=1.0, help="seconds between call starts (0: all at once, the worst case)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_bench_calls)
    p = bench.add_parser("batch", help="batch throughput on one machine beside a Ray cluster, on the same calls")
    p.add_argument("inputs", nargs="*", help="audio files or folders of them (default: audio_fixtures)")
    p.add_argument("--ray", metavar="ADDRESS", help="HOST:PORT of a Ray cluster's head (default: a local one)")
    p.add_argument("--ray-workers", type=int, default=2, metavar="N", help="Ray workers (default: 2)")
    p.add_argument("--repeat", type=int, default=3, help="each input taken this many times, as distinct calls")
    p.add_argument("--runs", type=int, default=1, help="timed runs of each side; the medians are reported")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_bench_batch)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_module.load_config(args.config)
        return args.run(args, config)
    except VoiceAgentError as exc:
        _print_error(str(exc))
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
