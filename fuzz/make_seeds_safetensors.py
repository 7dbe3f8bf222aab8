"""Writes the seed corpus of fuzz_safetensors (plain Python, no torch):
tiny GPT-2 checkpoints in the target's input form, a 4-byte little-endian
config length, config.json, then model.safetensors.

    python3 fuzz/make_seeds_safetensors.py [--out fuzz/corpus/fuzz_safetensors]
"""
import argparse
import json
import os
import random
import struct

V, C, L, NH, T = 5, 4, 1, 2, 3


def tensors(F, prefix):
    """GPT-2 tensors with HF names and shapes (Conv1D weights are (in, out))."""
    out = [("wte.weight", [V, C]), ("wpe.weight", [T, C])]
    for l in range(L):
        h = "h.%d." % l
        out += [(h + "ln_1.weight", [C]), (h + "ln_1.bias", [C]),
                (h + "attn.c_attn.weight", [C, 3 * C]), (h + "attn.c_attn.bias", [3 * C]),
                (h + "attn.c_proj.weight", [C, C]), (h + "attn.c_proj.bias", [C]),
                (h + "ln_2.weight", [C]), (h + "ln_2.bias", [C]),
                (h + "mlp.c_fc.weight", [C, F]), (h + "mlp.c_fc.bias", [F]),
                (h + "mlp.c_proj.weight", [F, C]), (h + "mlp.c_proj.bias", [C])]
    out += [("ln_f.weight", [C]), ("ln_f.bias", [C])]
    return [(prefix + n, s) for n, s in out]


def encode(values, dtype):
    if dtype == "F32":
        return b"".join(struct.pack("<f", v) for v in values)
    if dtype == "F16":
        return b"".join(struct.pack("<e", v) for v in values)
    # BF16: the top half of the float's bits (truncation is fine for seeds)
    return b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:]
                    for v in values)


def image(ts, dtype, extra=()):
    rnd = random.Random(len(ts))
    header, data = {"__metadata__": {"format": "pt"}}, b""
    wte = None
    for name, shape in ts:
        n = 1
        for d in shape:
            n *= d
        b = encode([rnd.uniform(-1, 1) for _ in range(n)], dtype)
        if name.endswith("wte.weight"):
            wte = (shape, b)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    for name in extra:
        if name == "lm_head.weight":
            shape, b = wte
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(b)]}
            data += b
        else:  # an old causal-mask buffer
            header[name] = {"dtype": "BOOL", "shape": [1, 1, T, T], "data_offsets": [len(data), len(data) + T * T]}
            data += b"\x01" * (T * T)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def config(F=None, ctx_key="n_positions", **more):
    c = {"model_type": "gpt2", "activation_function": "gelu_new", "vocab_size": V, ctx_key: T,
         "n_embd": C, "n_layer": L, "n_head": NH, "n_inner": F, "layer_norm_epsilon": 1e-5,
         "tie_word_embeddings": True}
    c.update(more)
    return json.dumps(c).encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "corpus", "fuzz_safetensors"))
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)
    seeds = {
        "f32": (config(), image(tensors(4 * C, "transformer."), "F32")),
        "f16_inner": (config(F=6), image(tensors(6, "transformer."), "F16")),
        "bf16_noprefix_lmhead": (config(ctx_key="n_ctx"),
                                 image(tensors(4 * C, ""), "BF16", ["lm_head.weight", "h.0.attn.bias"])),
        "missing_tensor": (config(n_layer=2), image(tensors(4 * C, "transformer."), "F32")),
    }
    for name, (cfg, img) in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(struct.pack("<I", len(cfg)) + cfg + img)
    print("wrote %d seeds to %s" % (len(seeds), out))


if __name__ == "__main__":
    main()
