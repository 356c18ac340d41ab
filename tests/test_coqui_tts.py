"""The Coqui backend on tiny random-weight models saved the way Coqui's trainer saves a training run.

No trained Coqui model can be installed here, so the fixture builds one from a config (a few thousand weights,
plain characters, no phonemizer) and writes ``config.json`` + ``checkpoint_<step>.pth`` with the trainer's own
functions: the backend then loads it through the same code path as a user's trained model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from voiceagent.components.tts import create_tts
from voiceagent.components.tts.coqui import find_checkpoint
from voiceagent.errors import MissingDependency, ModelNotFound

RATE = 16000  # not Coqui's default (22050), so the test sees the rate come from config.json


def _tiny_config(model: str):
    """A very small VITS (end to end) or Glow-TTS (spectrogram + Griffin-Lim) config on plain characters."""
    from TTS.config.shared_configs import BaseAudioConfig
    from TTS.tts.configs.shared_configs import CharactersConfig

    characters = dict(characters="abcdefghijklmnopqrstuvwxyz ", punctuations=".,!?'", phonemes=None, blank=None)
    common = dict(use_phonemes=False, text_cleaner="basic_cleaners")
    if model == "vits":
        from TTS.tts.configs.vits_config import VitsArgs, VitsConfig

        return VitsConfig(
            audio=BaseAudioConfig(sample_rate=RATE, fft_size=256, win_length=256, hop_length=64, do_trim_silence=False),
            characters=CharactersConfig(
                characters_class="TTS.tts.models.vits.VitsCharacters", pad="_", eos="", bos="", **characters
            ),
            model_args=VitsArgs(
                out_channels=129,  # fft_size / 2 + 1
                hidden_channels=16,
                hidden_channels_ffn_text_encoder=16,
                num_layers_text_encoder=1,
                num_layers_posterior_encoder=1,
                num_layers_flow=1,
                resblock_kernel_sizes_decoder=[3],
                resblock_dilation_sizes_decoder=[[1, 3, 5]],
                upsample_rates_decoder=[8, 8],  # product = hop_length
                upsample_initial_channel_decoder=16,
                upsample_kernel_sizes_decoder=[16, 16],
                use_sdp=False,
                init_discriminator=False,
            ),
            **common,
        )
    from TTS.tts.configs.glow_tts_config import GlowTTSConfig

    return GlowTTSConfig(
        audio=BaseAudioConfig(
            sample_rate=RATE,
            num_mels=20,
            fft_size=512,
            win_length=512,
            hop_length=128,
            mel_fmax=8000.0,
            do_trim_silence=False,
        ),
        characters=CharactersConfig(pad="_", eos="~", bos="^", **characters),
        out_channels=20,  # num_mels
        hidden_channels_enc=16,
        hidden_channels_dec=16,
        hidden_channels_dp=16,
        num_flow_blocks_dec=2,
        num_block_layers=1,
        encoder_params={
            "kernel_size": 3,
            "dropout_p": 0.1,
            "num_layers": 1,
            "num_heads": 2,
            "hidden_channels_ffn": 16,
            "input_length": None,
        },
        **common,
    )


@pytest.fixture(scope="module", params=["vits", "glow_tts"])
def model_dir(request, tmp_path_factory) -> Path:
    """A Coqui training folder holding a tiny random model: config.json and checkpoint_1.pth."""
    pytest.importorskip("TTS")
    import torch
    from trainer.io import copy_model_files, save_checkpoint
    from TTS.tts.models import setup_model

    folder = tmp_path_factory.mktemp(request.param)
    config = _tiny_config(request.param)
    config.output_path = str(folder)
    torch.manual_seed(0)
    model = setup_model(config)
    copy_model_files(config, folder, {})  # what Trainer writes at the start of a run
    save_checkpoint(config, model, folder, current_step=1, epoch=0)  # what it writes every save_step
    return folder


@pytest.fixture(scope="module")
def voice(model_dir):
    tts = create_tts("coqui", voice=str(model_dir))
    tts.load()
    return tts


@pytest.mark.slow
def test_the_trainer_folder_holds_what_a_user_would_point_at(model_dir):
    assert (model_dir / "config.json").is_file()
    assert find_checkpoint(model_dir) == model_dir / "checkpoint_1.pth"


@pytest.mark.slow
def test_one_chunk_per_sentence_at_the_config_rate(voice):
    chunks = list(voice.synthesize("Hello there. How are you?"))
    assert len(chunks) == 2
    assert voice.sample_rate == RATE
    for audio in chunks:
        assert audio.sample_rate == RATE
        assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
        assert len(audio.samples) > 0
        assert np.isfinite(audio.samples).all()
        assert np.abs(audio.samples).max() <= 1.0


@pytest.mark.slow
def test_longer_text_gives_longer_audio(voice):
    short = voice.synthesize_sentence("Hi there.")
    long = voice.synthesize_sentence("This sentence has many more words than the first one had.")
    assert len(long.samples) > 3 * len(short.samples) > 0


@pytest.mark.slow
def test_resampled_to_telephone_rate(voice):
    native = list(voice.synthesize("Hello there. How are you?"))
    phone = list(voice.synthesize("Hello there. How are you?", sample_rate=8000))
    assert [a.sample_rate for a in phone] == [8000, 8000]
    for a, b in zip(native, phone):
        assert b.samples.dtype == np.float32
        assert abs(len(b.samples) - len(a.samples) * 8000 / RATE) <= 2


@pytest.mark.slow
def test_load_is_idempotent(voice):
    model = voice._model
    voice.load()
    assert voice._model is model


def test_missing_folder_is_model_not_found(tmp_path):
    tts = create_tts("coqui", voice=str(tmp_path / "nowhere"))
    with pytest.raises(ModelNotFound, match="no such folder"):
        list(tts.synthesize("Hello."))


def test_folder_without_config_or_checkpoint_is_model_not_found(tmp_path):
    with pytest.raises(ModelNotFound, match="no config.json"):
        create_tts("coqui", voice=str(tmp_path)).load()
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFound, match="no checkpoint"):
        create_tts("coqui", voice=str(tmp_path)).load()


def test_checkpoint_preference(tmp_path):
    for name in ("checkpoint_900.pth", "checkpoint_10000.pth", "checkpoint_notes.pth"):
        (tmp_path / name).touch()
    assert find_checkpoint(tmp_path) == tmp_path / "checkpoint_10000.pth"
    (tmp_path / "best_model.pth").touch()
    assert find_checkpoint(tmp_path) == tmp_path / "best_model.pth"
    (tmp_path / "model.pth").touch()
    assert find_checkpoint(tmp_path) == tmp_path / "model.pth"


def test_without_coqui_the_error_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.pth").touch()
    monkeypatch.setitem(sys.modules, "TTS", None)
    with pytest.raises(MissingDependency, match=r"voiceagent\[coqui\]") as info:
        create_tts("coqui", voice=str(tmp_path)).load()
    assert info.value.extra == "coqui"
