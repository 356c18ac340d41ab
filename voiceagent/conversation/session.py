"""One live call: listen, recognise, respond and speak at once, with turn-taking and barge-in.

A transport (microphone, RTP, a socket) gives a ``CallSession`` the caller's audio as it arrives (``feed``, any
chunk size, at the transport's rate) and takes the agent's audio as it plays it out (``play(n)``: the next n
samples, silence when the agent has nothing to say). The transport paces both; the session never sleeps.

Inside, ``feed`` runs the VAD and the endpointer frame by frame (cheap, in the transport's thread). Speech
recognition runs on a listener thread: partial transcripts while the caller speaks, and one as soon as the caller
falls silent, so the final transcript is usually ready when the endpointer decides the turn is over. Replies run
on a speaker thread: the dialogue core's clauses go to TTS as they come, and each sentence's audio is queued for
``play`` as soon as it is made.

Barge-in: when the caller starts speaking over the agent, playback pauses at once. Words in the caller's speech
confirm the interruption: the reply is cancelled (generation stops, queued audio is dropped) and the agent turn in
the call state keeps only what the caller heard. A cough or an "uh-huh" (no words) lets the agent go on where
it paused.

Every reply gets latency marks from the end of the caller's speech, kept in the call record, which is written as
each reply finishes and when the call ends.
"""

from __future__ import annotations

import datetime
import json
import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from voiceagent.audio import Audio
from voiceagent.components.tts import split_sentences
from voiceagent.conversation.endpointer import Endpointer, EndpointRules, Event
from voiceagent.conversation.recording import CallRecording
from voiceagent.dialogue.agent import meaningful_words
from voiceagent.dialogue.state import CallState, TurnRecord
from voiceagent.files import write_atomically
from voiceagent.privacy import Redactor, record_name

log = logging.getLogger(__name__)

ASR_RATE = 16000
#: Slack around a caller turn silenced in the call's audio (VAD decisions and resampling lag the sound a little).
SILENCE_MARGIN_S = 0.3
#: Once a frame is speech, the next one is too if its probability is at most this far under the VAD's threshold.
HYSTERESIS = 0.15
#: How fast the echo guard learns the level of the echo (per frame heard while the agent plays).
ECHO_LEARNING = 0.1
#: How far back the echo guard looks at what was played (the echo's delay through a room and a sound card).
ECHO_WINDOW_S = 0.3
#: The marks of a reply, in order, after the end of the caller's speech: the endpointer decides the turn is over;
#: its final transcript is ready; the speaker starts on it; the language model's first token (when it speaks);
#: the dialogue core's first clause; TTS audio of the first sentence; that audio goes out on the line.
MARKS = ("endpoint", "transcript", "reply_start", "first_token", "first_clause", "first_audio_ready", "first_audio")
# Short answers a caller gives while listening; they do not interrupt the agent.
BACKCHANNELS = frozenset("uh-huh uh huh mm-hmm mhm mm hmm yeah yep right okay ok sure aha".split())


@dataclass
class ConversationRules:
    """How a live call behaves ([conversation] in the config)."""

    endpoint: EndpointRules = field(default_factory=EndpointRules)
    #: Caller speech over the agent that pauses it at once (a shorter click or cough does not).
    barge_in_after_s: float = 0.1
    #: Words (not "uh-huh", not a cough) the caller must say over the agent for the interruption to stand;
    #: without them the agent goes on from where it paused.
    barge_in_min_words: int = 1
    #: A partial transcript is made after each this much new speech while the caller talks.
    partial_every_s: float = 1.0
    #: After this much silence inside a turn, the turn so far is transcribed, ready for its end.
    early_transcript_after_s: float = 0.15
    #: Silence from the caller, after the agent finished speaking, before it asks whether they are there.
    reprompt_after_s: float = 8.0
    #: Silence after which the agent says goodbye and hangs up.
    hang_up_after_s: float = 24.0
    reprompt: str = "Are you still there?"
    silent_goodbye: str = "I can't hear anyone on the line, so I'll end the call now. Goodbye."
    #: Keypad presses end at "#" or after this long without another.
    dtmf_timeout_s: float = 2.0
    #: Local microphone and speaker: "off" (telephony: no echo), "guard" (speech heard while the agent plays
    #: counts only if ``echo_margin_db`` louder than the echo of its voice, whose level the guard learns from
    #: what the microphone hears while it plays, starting from the playback's own), "half-duplex" (no listening
    #: while playing: no barge-in).
    echo_guard: str = "off"
    echo_margin_db: float = 6.0
    #: False: the naive sequential pipeline (no partials; the whole reply is written, then spoken): the baseline.
    streaming: bool = True

    @classmethod
    def from_config(cls, table: dict) -> ConversationRules:
        options = {k: v for k, v in table.items() if k != "endpoint"}
        return cls(endpoint=EndpointRules(**table.get("endpoint", {})), **options)


class Engine:
    """The loaded stages, shared by every call one process serves."""

    def __init__(
        self,
        vad,
        asr,
        agent,
        tts,
        rules: ConversationRules | None = None,
        records: Path | None = None,
        redactor: Redactor | None = None,
        record_audio: bool = True,
    ):
        self.vad, self.asr, self.agent, self.tts = vad, asr, agent, tts
        self.rules = rules or ConversationRules()
        #: Folder of call records (``<call id>.json``); None keeps them in memory only.
        self.records = records
        #: What the records hide ([privacy] redact); the calls themselves work on what was said.
        self.redactor = redactor or Redactor()
        #: Whether each call's audio, both sides, goes beside its record (``<call id>.wav``).
        self.record_audio = record_audio
        self._recognising = 0  # transcriptions running now, over all calls
        self._recognising_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: dict, records: Path | None = None, no_lm: bool = False) -> Engine:
        from voiceagent import config as config_module

        privacy = config.get("privacy", {})
        return cls(
            config_module.build_vad(config),
            config_module.build_asr(config),
            config_module.build_agent(config, no_lm=no_lm),
            config_module.build_tts(config),
            ConversationRules.from_config(config.get("conversation", {})),
            records,
            Redactor.from_config(privacy),
            privacy.get("record_audio", True),
        )

    def load(self) -> None:
        """Load every model now, so the first call does not wait for them."""
        self.vad.load()
        self.asr.load()
        self.tts.load()

    def transcribe(self, samples: np.ndarray, partial: bool) -> str | None:
        """The text of 16 kHz speech; a partial transcript only when no other transcription runs (None if not):
        under load, the transcripts that end turns go first, and partials are the first thing dropped."""
        with self._recognising_lock:
            if partial and self._recognising:
                return None
            self._recognising += 1
        try:
            return self.asr.transcribe(Audio(samples, ASR_RATE)).text
        finally:
            with self._recognising_lock:
                self._recognising -= 1

    def open_call(self, sample_rate: int, **options) -> CallSession:
        """A new call whose audio comes and goes at ``sample_rate``; see ``CallSession`` for the options."""
        self.load()
        if self.records is not None:
            self.records.mkdir(parents=True, exist_ok=True)
        return CallSession(self, sample_rate, **options)


class _Worker:
    """Runs jobs one after another on its own thread, or at once in the caller's thread when ``inline``."""

    def __init__(self, name: str, inline: bool):
        self.inline = inline
        self._jobs: queue.Queue = queue.Queue()
        if not inline:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def submit(self, job: Callable, *args) -> None:
        if self.inline:
            job(*args)
        else:
            self._jobs.put((job, args))

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, args = item
            try:
                job(*args)
            except Exception:  # one failed job (a transcription, a reply) must not strand the call's next ones
                log.exception("%s: %s failed", self._thread.name, getattr(job, "__name__", job))

    def close(self) -> None:
        """Stop once the jobs queued so far have run."""
        if not self.inline:
            self._jobs.put(None)


@dataclass
class _Chunk:
    """One sentence of a reply's audio, and how much of it has been played."""

    sentence: str
    samples: np.ndarray
    position: int = 0
    private: bool = False  # it speaks a card number: the caller hears it, the call's audio keeps silence


@dataclass
class _Reply:
    """One agent turn on its way out: generated, queued (its own queue: dropped whole on barge-in), played."""

    kind: str  # "greet", "reply" (to the caller), "prompt" (to a silent caller)
    marks: dict[str, float]
    cancel: threading.Event = field(default_factory=threading.Event)
    chunks: deque[_Chunk] = field(default_factory=deque)
    heard: list[str] = field(default_factory=list)  # sentences played to the end
    generated: bool = False
    record: TurnRecord | None = None  # the agent turn in the call state, once generation ended
    interrupted_at: _Chunk | None = None
    interrupted: bool = False


@dataclass
class _Transcription:
    """A transcript asked for, of the turn's audio so far, which has speech up to ``speech_end`` (samples at
    16 kHz). ``kind``: "partial" (while the caller speaks), "early" (once they fall silent: the final one if the
    turn ends before they speak again), "final" (at the end of the turn, when no early one was asked for)."""

    turn: int
    speech_end: int
    kind: str
    text: str | None = None


class CallSession:
    """One call. Transports call ``feed``, ``play``, ``dtmf`` and ``close``; ``ended`` is set when it is over.

    ``inline`` runs recognition and replies inside ``feed``/``play`` instead of on threads (tests and simulated
    time: the result depends on the audio alone). ``clock`` gives the time for latency marks. ``on_event`` is
    called with (kind, data) as things happen: partial, caller, agent, interrupted, resumed, latency, ended.
    """

    def __init__(
        self,
        engine: Engine,
        sample_rate: int,
        call_id: str | None = None,
        transport: str = "",
        inline: bool = False,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[str, dict], None] | None = None,
    ):
        import soxr

        self.engine = engine
        self.rules = engine.rules
        self.sample_rate = sample_rate
        self.call_id = call_id or uuid.uuid4().hex
        self.transport = transport
        self.clock = clock
        self.on_event = on_event or (lambda kind, data: None)
        self.state = CallState()
        self.ended = threading.Event()
        self.end_reason = ""
        #: Where the agent handed the call over, for the transport to carry out (SIP REFER and the like).
        self.transfer_to: str | None = None
        self.started_at = datetime.datetime.now(datetime.UTC)

        self._vad = engine.vad.stream()
        self._frame = self._vad.frame_samples
        self._frame_s = self._frame / ASR_RATE
        self._endpointer = Endpointer(self.rules.endpoint)
        self._resampler = None if sample_rate == ASR_RATE else soxr.ResampleStream(sample_rate, ASR_RATE, 1)
        self._lock = threading.RLock()
        self._unframed = np.zeros(0, np.float32)
        self._frame_was_speech = False
        pre_roll_frames = int(
            np.ceil((self.rules.endpoint.pre_roll_s + self.rules.endpoint.speech_start_s) / self._frame_s)
        )
        self._pre_roll: deque[np.ndarray] = deque(maxlen=pre_roll_frames)
        self._turn_audio: list[np.ndarray] = []
        self._turn_number = 0
        self._speech_end = 0  # samples of the turn's audio up to its last speech frame
        self._last_speech_at = 0.0
        self._partial_at = 0
        self._transcriptions: list[_Transcription] = []
        #: The end of turn waiting for its transcript: its latency marks and the transcript asked for.
        self._waiting_final: tuple[dict[str, float], _Transcription] | None = None
        self._reply: _Reply | None = None
        self._paused = False
        self._silence_s = 0.0
        self._reprompts = 0
        self._ending = False  # the agent's last words are on their way; the call ends when they are played
        self._dtmf = ""
        self._dtmf_quiet_s = 0.0
        # The echo guard's memory of what was played: (samples, level) of each play(), the last ECHO_WINDOW_S.
        self._played_levels: deque[tuple[int, float]] = deque()
        self._played_samples = 0
        self._echo_gain = 1.0  # the echo's level over the playback's; learnt while the agent plays
        self._recording = None  # opened before the workers start: a file that will not open leaks no thread
        if engine.records is not None and engine.record_audio:
            self._recording = CallRecording(engine.records / f"{record_name(self.call_id)}.wav", sample_rate)
        self._listened = 0  # caller samples (16 kHz) through the VAD so far
        self._turn_spans: dict[int, list[int]] = {}  # each caller turn's [start, end] in the recording's frames
        # Per ended turn whose audio is recorded, the transcript that decides whether it is silenced (a card
        # number in it), until that check ran: it runs however many turns or hang-ups came since.
        self._unchecked: dict[int, _Transcription] = {}
        self._snapshot: dict | None = None  # the record as last saved, redacted
        #: Set once everything about the call is written (its record, and its audio once the transcripts still
        #: running when it ended have silenced what they must).
        self.finished = threading.Event()
        self._listener = _Worker(f"listener-{self.call_id[:8]}", inline)
        self._speaker = _Worker(f"speaker-{self.call_id[:8]}", inline)

    # Transport side -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Answer: the agent greets the caller."""
        self._speaker.submit(self._speak, "greet", "", None, {})

    def feed(self, samples: np.ndarray) -> None:
        """The caller's audio as it arrives (float32 mono at the transport's rate, any length)."""
        if self.ended.is_set():
            return
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if self._recording is not None:
            with self._lock:
                self._recording.caller(samples)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        with self._lock:
            data = np.concatenate([self._unframed, samples])
            whole = len(data) // self._frame * self._frame
            self._unframed = data[whole:]
            if whole == 0:
                return
            frames = data[:whole].reshape(-1, self._frame)
            probabilities = self._vad.frame_probabilities(frames)
            for frame, probability in zip(frames, probabilities):
                if self.ended.is_set():
                    return
                # Hysteresis, as Silero's own iterator does: speech goes on while the probability stays near.
                threshold = self._vad.threshold - (HYSTERESIS if self._frame_was_speech else 0.0)
                self._frame_was_speech = bool(probability > threshold)
                self._on_frame(frame, self._frame_was_speech)

    def play(self, count: int) -> np.ndarray:
        """The next ``count`` samples of the agent's voice at the transport's rate (silence when it is quiet)."""
        out = np.zeros(count, np.float32)
        private: list[tuple[int, int]] = []  # stretches of ``out`` that speak a card number
        with self._lock:
            reply = self._reply
            filled = 0
            while reply is not None and not self._paused and filled < count and reply.chunks:
                chunk = reply.chunks[0]
                take = chunk.samples[chunk.position : chunk.position + count - filled]
                if filled == 0 and chunk.position == 0 and "first_audio" not in reply.marks:
                    reply.marks["first_audio"] = self.clock()
                out[filled : filled + len(take)] = take
                if chunk.private:
                    private.append((filled, filled + len(take)))
                filled += len(take)
                chunk.position += len(take)
                if chunk.position >= len(chunk.samples):
                    reply.chunks.popleft()
                    reply.heard.append(chunk.sentence)
            if self.rules.echo_guard != "off" and count:
                self._remember_played(out)
            if self._recording is not None and not self.ended.is_set():
                recorded = out.copy() if private else out
                for start, end in private:
                    recorded[start:end] = 0.0
                self._recording.agent(recorded)
            if reply is not None and reply.generated and not reply.chunks and not self._paused:
                self._reply_played(reply)
        return out

    def dtmf(self, key: str) -> None:
        """A keypad press (0-9, *, #). A number ends at "#" or after a pause; it interrupts the agent."""
        with self._lock:
            if self.ended.is_set():
                return
            self._silence_s = 0.0
            if self._reply is not None:
                self._interrupt(self._reply)
            if key == "#":
                self._send_dtmf()
            else:
                self._dtmf += key
                self._dtmf_quiet_s = 0.0

    def close(self, reason: str = "caller hung up") -> None:
        """End the call now (the caller hung up, the line dropped): what was heard is recorded, the record saved."""
        with self._lock:
            if self.ended.is_set():
                return
            if self._reply is not None:
                self._interrupt(self._reply)
        self._end(reason)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the call has ended and everything about it is written; whether it has."""
        return self.finished.wait(timeout_s)

    @property
    def busy(self) -> bool:
        """Whether the agent is working on or speaking a reply."""
        with self._lock:
            return self._reply is not None or self._waiting_final is not None

    # Listening ------------------------------------------------------------------------------------------------

    def _on_frame(self, frame: np.ndarray, speech: bool) -> None:
        now = self.clock()
        self._listened += len(frame)
        speech = self._echo_guard(frame, speech)
        endpointer = self._endpointer
        was_in_turn = endpointer.in_turn
        event = endpointer.feed(self._frame_s, speech)
        if not was_in_turn:
            self._pre_roll.append(frame)
            if event is Event.SPEECH_START:
                self._turn_started(now)
            else:
                self._barge_in_pause(now)
                self._tick_quiet()
            return
        self._turn_audio.append(frame)
        audio_length = len(self._turn_audio) * self._frame
        if speech:
            self._speech_end = audio_length
            self._last_speech_at = now
            if self.rules.streaming and audio_length - self._partial_at >= self.rules.partial_every_s * ASR_RATE:
                self._partial_at = audio_length
                self._transcribe("partial")
        elif (
            self.rules.streaming
            and endpointer.silence_s >= self.rules.early_transcript_after_s
            and self._early_transcription() is None
        ):
            self._transcribe("early")
        if event in (Event.END_OF_TURN, Event.MAX_TURN):
            self._turn_ended(now, event)

    def _barge_in_pause(self, now: float) -> None:
        """Pause the agent as soon as the caller has spoken ``barge_in_after_s`` over it (before a turn has
        started); go on if that speech stops short of a turn (a click, a cough)."""
        reply = self._reply
        if reply is None or reply.interrupted:
            return
        speaking = self._endpointer.speech_run_s >= self.rules.barge_in_after_s
        if speaking and not self._paused:
            self._paused = True
            reply.marks.setdefault("barge_in", now)
            self.on_event("paused", {})
        elif self._paused and self._endpointer.speech_run_s == 0 and self._waiting_final is None:
            self._paused = False
            reply.marks.pop("barge_in", None)
            self.on_event("resumed", {"text": ""})

    def _turn_started(self, now: float) -> None:
        self._turn_number += 1
        self._turn_audio = list(self._pre_roll)
        self._pre_roll.clear()
        self._speech_end = len(self._turn_audio) * self._frame
        self._last_speech_at = now
        self._partial_at = 0
        self._transcriptions = []
        start = self._listened - len(self._turn_audio) * self._frame
        if self._recording is not None:
            self._turn_spans[self._turn_number] = [self._recorded_at(start - SILENCE_MARGIN_S * ASR_RATE)] * 2
        if self._reply is not None and not self._reply.interrupted and not self._paused:
            self._paused = True  # the caller may be interrupting
            self._reply.marks.setdefault("barge_in", now)
            self.on_event("paused", {})

    def _turn_ended(self, now: float, event: Event) -> None:
        marks = {"end_of_speech": self._last_speech_at, "endpoint": now}
        if self._recording is not None:
            self._turn_spans[self._turn_number][1] = self._recorded_at(self._listened + SILENCE_MARGIN_S * ASR_RATE)
        if (early := self._early_transcription()) is None:
            self._transcribe("final", marks)
        else:
            self._waiting_final = (marks, early)
            self._check_later(early)
            if early.text is not None:
                self._silence_card(early)
                self._final_transcript()
        if event is Event.MAX_TURN:
            self.on_event("max_turn", {})

    def _early_transcription(self) -> _Transcription | None:
        """The early transcript asked for since the caller's last speech, if any."""
        return next((t for t in self._transcriptions if t.kind == "early" and t.speech_end == self._speech_end), None)

    def _transcribe(self, kind: str, marks: dict[str, float] | None = None) -> None:
        """Ask the listener for a transcript of the turn so far (the final one: with the turn's latency marks)."""
        wanted = _Transcription(self._turn_number, self._speech_end, kind)
        self._transcriptions.append(wanted)
        if marks is not None:
            self._waiting_final = (marks, wanted)
            self._check_later(wanted)
        audio = np.concatenate(self._turn_audio)
        self._listener.submit(self._run_asr, wanted, audio)

    def _check_later(self, final: _Transcription) -> None:
        """The turn's final transcript is the one that says whether its audio is silenced: run it whatever
        comes next (a newer turn, a hang-up)."""
        if self._recording is not None:
            self._unchecked[final.turn] = final

    def _silence_card(self, transcription: _Transcription) -> None:
        """PCI: no card number in the call's audio. Once a turn's final transcript is there, the turn is
        silenced if it has one."""
        if self._unchecked.get(transcription.turn) is not transcription:
            return
        del self._unchecked[transcription.turn]
        if "card" in self.engine.redactor.found(transcription.text or ""):
            self._recording.silence_caller(*self._turn_spans[transcription.turn])

    def _run_asr(self, wanted: _Transcription, audio: np.ndarray) -> None:
        with self._lock:
            awaited = self._waiting_final is not None and self._waiting_final[1] is wanted
            newest = wanted.turn == self._turn_number and self._transcriptions[-1] is wanted
            unchecked = self._unchecked.get(wanted.turn) is wanted
        if not (awaited or unchecked or (newest and not self.ended.is_set())):
            return  # a newer transcript of this turn is asked for already, or the turn is over
        text = self.engine.transcribe(audio, partial=wanted.kind == "partial")
        if text is None:
            return  # busy with other calls' turns: no partial this time
        with self._lock:
            wanted.text = text
            self._silence_card(wanted)
            if self._waiting_final is not None and self._waiting_final[1] is wanted:
                self._final_transcript()
            elif wanted.turn == self._turn_number and self._endpointer.in_turn:
                self._endpointer.expect_more(self.engine.agent.expects_more(self.state, text))
                self.on_event("partial", {"text": text})
                if self._reply is not None and self._enough_words(text):
                    self._interrupt(self._reply)

    def _final_transcript(self) -> None:
        (marks, transcription), self._waiting_final = self._waiting_final, None
        marks["transcript"] = self.clock()
        text = transcription.text or ""
        if self.ended.is_set():
            return  # the caller's last words, transcribed after the hang-up for the audio's sake alone
        reply = self._reply
        if reply is not None and not reply.interrupted:
            if not self._enough_words(text):
                self._paused = False  # a cough, an "uh-huh": the agent goes on
                reply.marks.pop("barge_in", None)
                self.on_event("resumed", {"text": text})
                return
            self._interrupt(reply)
        if not meaningful_words(text):
            return  # noise, a breath: not a turn
        self._silence_s = 0.0
        self._reprompts = 0
        self.on_event("caller", {"text": text})
        self._speaker.submit(self._speak, "reply", text, None, marks)

    def _recorded_at(self, listened: float) -> int:
        """The frame in the call's audio of a point of the caller's 16 kHz audio: the caller's samples given to
        the recording up to there, and the silence it padded in before them (the line stalled)."""
        return self._recording.caller_frame(max(0, int(listened * self.sample_rate / ASR_RATE)))

    def _enough_words(self, text: str) -> bool:
        words = [w for w in meaningful_words(text) if w not in BACKCHANNELS]
        return len(words) >= max(1, self.rules.barge_in_min_words)

    def _remember_played(self, out: np.ndarray) -> None:
        self._played_levels.append((len(out), float(np.sqrt(np.mean(out**2)))))
        self._played_samples += len(out)
        window = ECHO_WINDOW_S * self.sample_rate
        while self._played_samples - self._played_levels[0][0] >= window:
            self._played_samples -= self._played_levels.popleft()[0]

    def _echo_guard(self, frame: np.ndarray, speech: bool) -> bool:
        """Whether speech heard while the agent plays is the caller's, not the agent's own voice coming back."""
        mode = self.rules.echo_guard
        if mode == "off" or not self._played_levels:
            return speech
        played = max(level for _, level in self._played_levels)
        if played < 1e-4:
            return speech
        if mode == "half-duplex":
            return False
        ratio = float(np.sqrt(np.mean(frame**2))) / played
        if ratio > self._echo_gain * 10 ** (self.rules.echo_margin_db / 20):
            return speech  # clearly louder than the echo: the caller
        self._echo_gain += ECHO_LEARNING * (ratio - self._echo_gain)  # how loud the echo comes back
        return False

    def _tick_quiet(self) -> None:
        """A frame outside any caller turn: keypad and silence timers."""
        if self._dtmf:
            self._dtmf_quiet_s += self._frame_s
            if self._dtmf_quiet_s >= self.rules.dtmf_timeout_s:
                self._send_dtmf()
        if self.busy or self._ending:
            return
        self._silence_s += self._frame_s
        rules = self.rules
        if self._silence_s >= rules.hang_up_after_s:
            self._ending = True
            self._speaker.submit(self._speak, "prompt", rules.silent_goodbye, None, {})
        elif self._silence_s >= rules.reprompt_after_s * (self._reprompts + 1):
            self._reprompts += 1
            self._speaker.submit(self._speak, "prompt", rules.reprompt, None, {})

    def _send_dtmf(self) -> None:
        keys, self._dtmf = self._dtmf + "#", ""
        self.on_event("caller", {"dtmf": keys})
        self._speaker.submit(self._speak, "reply", "", keys, {"end_of_speech": self.clock()})

    # Speaking -------------------------------------------------------------------------------------------------

    def _speak(self, kind: str, text: str, dtmf: str | None, marks: dict[str, float]) -> None:
        """Speaker thread: one agent turn, from the dialogue core's clauses to queued audio."""
        if self.ended.is_set():
            return
        reply = _Reply(kind, marks)
        with self._lock:
            self._reply = reply
        marks["reply_start"] = self.clock()
        turns_before = len(self.state.turns)
        agent, tts = self.engine.agent, self.engine.tts
        if kind == "greet":
            clauses = (clause for clause in [agent.greet(self.state)])
        elif kind == "prompt":
            self.state.turns.append(TurnRecord("agent", text))
            clauses = (clause for clause in [text])
        else:
            clauses = agent.respond(self.state, text, dtmf, reply.cancel)
        with closing(clauses):
            if self.rules.streaming:
                for clause in clauses:
                    marks.setdefault("first_clause", self.clock())
                    for sentence, audio in zip(split_sentences(clause), tts.synthesize(clause, self.sample_rate)):
                        if not self._queue(reply, sentence, audio.samples):
                            break
                    if reply.cancel.is_set():
                        break
            else:
                whole = " ".join(clauses)
                marks["first_clause"] = self.clock()
                self._queue(reply, whole, tts.speak(whole, self.sample_rate).samples)
        with self._lock:
            reply.generated = True
            reply.record = next((t for t in self.state.turns[turns_before:] if t.role == "agent"), None)
            if reply.record is not None and "first_token_ms" in reply.record.timings:  # the dialogue core's timing
                marks["first_token"] = marks["reply_start"] + reply.record.timings["first_token_ms"] / 1000
            self._ending = self._ending or self.state.ended
            self._settle(reply)
            if reply.interrupted or not reply.chunks:
                self._reply_played(reply)
            if self.ended.is_set():
                self._save()  # the caller hung up while this reply was being written

    def _queue(self, reply: _Reply, sentence: str, samples: np.ndarray) -> bool:
        with self._lock:
            if reply.cancel.is_set() or self.ended.is_set():
                return False
            reply.marks.setdefault("first_audio_ready", self.clock())
            private = self._recording is not None and "card" in self.engine.redactor.found(sentence)
            reply.chunks.append(_Chunk(sentence, samples.astype(np.float32, copy=False), private=private))
            self.on_event("agent", {"text": sentence})
            return True

    def _interrupt(self, reply: _Reply) -> None:
        """The caller really interrupted: stop generating, drop what is queued, keep what was heard."""
        if reply.interrupted:
            return
        reply.interrupted = True
        reply.cancel.set()
        if reply.chunks and reply.chunks[0].position > 0:
            reply.interrupted_at = reply.chunks[0]
        reply.chunks.clear()
        self._paused = False
        self._settle(reply)
        self.on_event("interrupted", {"heard": " ".join(self._heard(reply))})
        if reply.generated:
            self._reply_played(reply)

    @staticmethod
    def _heard(reply: _Reply) -> list[str]:
        heard = list(reply.heard)
        if (chunk := reply.interrupted_at) is not None:  # the words of the sentence played so far, pro rata
            words = chunk.sentence.split()
            heard.append(" ".join(words[: round(len(words) * chunk.position / len(chunk.samples))]))
        return [h for h in heard if h]

    def _settle(self, reply: _Reply) -> None:
        """Once an interrupted reply's turn is in the call state, it is cut to what the caller heard."""
        record = reply.record
        if record is None or not reply.interrupted or record.interrupted:
            return
        heard = " ".join(self._heard(reply))
        record.interrupted = True
        record.unheard = record.text[len(heard) :].strip() if record.text.startswith(heard) else record.text
        record.text = heard

    def _reply_played(self, reply: _Reply) -> None:
        """The reply is over (played to the end, or interrupted): latencies, the record, and what comes next."""
        if self._reply is not reply:
            return
        self._reply = None
        self._paused = False
        if reply.kind != "prompt":
            self._silence_s = 0.0  # prompts do not restart the wait for a silent caller
        if reply.record is not None:
            reply.record.latency = _latency(reply.marks)
            if reply.record.latency:
                self.on_event("latency", reply.record.latency)
        self._speaker.submit(self._save)
        if self._ending:
            self._end("agent ended the call")

    def _end(self, reason: str) -> None:
        with self._lock:
            if self.ended.is_set():
                return
            self.end_reason = reason
            transfer = next((a for a in self.state.actions if a.get("type") == "transfer"), None)
            if transfer is not None:
                self.transfer_to = transfer.get("target")
            if self._reply is not None:
                self._reply.cancel.set()
            self._save()
            self.ended.set()
            if self._recording is not None and self._endpointer.in_turn:
                self._turn_ended(self.clock(), Event.END_OF_TURN)  # transcribed, to silence a card said at the end
        # The audio is closed once the transcripts asked for so far have run: they may silence some of it.
        self._listener.submit(self._finish)
        self._listener.close()
        self._speaker.close()
        self.on_event("ended", {"reason": reason})

    def _finish(self) -> None:
        try:
            with self._lock:
                if self._recording is not None:
                    self._recording.close()
        finally:
            self.finished.set()  # whatever happened: wait() returns

    # The record -------------------------------------------------------------------------------------------------

    def record(self) -> dict:
        """The call so far: its turns (with latencies), slots and actions; ``end_reason`` once it is over."""
        return {**self._about(), **self.state.to_dict()}

    def snapshot(self) -> dict:
        """The call's record as last saved, redacted: what others may read while the call goes on (the call
        state itself changes under them on the session's threads). Before the first save, the call alone."""
        with self._lock:
            return self._snapshot if self._snapshot is not None else self._redacted(self._about())

    def _about(self) -> dict:
        return {
            "call_id": self.call_id,
            "transport": self.transport,
            "sample_rate": self.sample_rate,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "end_reason": self.end_reason,
            "transfer_to": self.transfer_to,
            **({"audio": self._recording.path.name} if self._recording is not None else {}),
        }

    def _redacted(self, record: dict) -> dict:
        """The record redacted; the call id and the audio's name stay as they are: they name the files."""
        names = {key: record[key] for key in ("call_id", "audio") if key in record}
        return {**self.engine.redactor.data(record), **names}

    def _save(self) -> None:
        """Keep the record, redacted, as the snapshot, and write it where the engine keeps records."""
        with self._lock:  # the speaker thread and the one that ends the call may both save
            self._snapshot = self._redacted(self.record())
            if self.engine.records is not None:
                text = json.dumps(self._snapshot, indent=1, ensure_ascii=False, default=str)
                write_atomically(self.engine.records / f"{record_name(self.call_id)}.json", text)


def _latency(marks: dict[str, float]) -> dict[str, float]:
    """Milliseconds from the end of the caller's speech to each of the reply's ``MARKS``, and voice to voice."""
    if "end_of_speech" not in marks or "first_audio" not in marks:
        return {}
    latency = {f"{m}_ms": round((marks[m] - marks["end_of_speech"]) * 1000, 1) for m in MARKS if m in marks}
    latency["voice_to_voice_ms"] = latency["first_audio_ms"]
    return latency
