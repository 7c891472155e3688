#!/usr/bin/env python3
"""Independent NumPy reference for @hyperllama/llama-model: writes the small logits fixtures its tests compare to.

Two forward passes, both in float64, written from the model definitions rather than from our TypeScript:
  * hf_forward: Hugging Face LlamaForCausalLM (RMSNorm, rotate_half RoPE from position ids, grouped-query attention
    via repeat_kv, SwiGLU MLP, tied or untied head, additive causal + padding mask).
  * llama2c_forward: llama2.c's run.c on its own unpermuted weights (RoPE on adjacent pairs), so our conversion of
    .bin files (the wq/wk row permutation) is checked against the original convention.

Usage (from the repository root; needs only numpy):
  python3 tools/reference/llama_reference.py [--shared ../shared] [--out packages/llama-model/test/fixtures]
Writes, under --out:
  tiny-gqa-tied/            config.json, model.safetensors (random weights), reference.safetensors
  tiny-untied-padded/       same, batch of 3 left-padded rows, untied head, rope_theta 100, head_dim != hidden/heads
  tiny-llama2c-untied.bin   a llama2.c v0 file (GQA, untied classifier) + tiny-llama2c-untied.reference.safetensors
  stories260k.reference.safetensors  logits of ../shared/models/stories260K/stories260K.bin on fixed prompts
Each reference.safetensors holds input_ids (I32), attention_mask (I32), position_ids (I32) and logits (F32).
"""
import argparse
import json
import os
import struct

import numpy as np

# ---------------------------------------------------------------- file formats

DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = data[8 + n + begin : 8 + n + end]
        if info["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(DTYPES[info["dtype"]]).newbyteorder("<"))
        out[name] = arr.reshape(info["shape"]).astype(np.float64 if arr.dtype.kind == "f" else np.int64)
    return out


def write_safetensors(path, tensors, metadata=None):
    header, blobs, offset = ({"__metadata__": metadata} if metadata else {}), [], 0
    for name in sorted(tensors):
        arr = np.asarray(tensors[name])
        dtype = "I32" if arr.dtype.kind in "iu" else "F32"
        raw = np.ascontiguousarray(arr, dtype="<i4" if dtype == "I32" else "<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for raw in blobs:
            f.write(raw)


def read_llama2c(path):
    """The raw llama2.c arrays (run.c's memory_map_weights), float64, in llama2.c's own layout."""
    with open(path, "rb") as f:
        dim, hidden, layers, heads, kv_heads, vocab, seq_len = struct.unpack("<7i", f.read(28))
        floats = np.frombuffer(f.read(), dtype="<f4").astype(np.float64)
    shared = vocab > 0
    vocab = abs(vocab)
    hd = dim // heads
    kv_dim = kv_heads * hd
    sizes = [
        ("embed", (vocab, dim)), ("rms_att", (layers, dim)), ("wq", (layers, dim, dim)),
        ("wk", (layers, kv_dim, dim)), ("wv", (layers, kv_dim, dim)), ("wo", (layers, dim, dim)),
        ("rms_ffn", (layers, dim)), ("w1", (layers, hidden, dim)), ("w2", (layers, dim, hidden)),
        ("w3", (layers, hidden, dim)), ("rms_final", (dim,)), ("freq_real", (seq_len, hd // 2)),
        ("freq_imag", (seq_len, hd // 2)),
    ]
    if not shared:
        sizes.append(("cls", (vocab, dim)))
    w, pos = {}, 0
    for name, shape in sizes:
        n = int(np.prod(shape))
        w[name] = floats[pos : pos + n].reshape(shape)
        pos += n
    assert pos == len(floats), f"{path}: {len(floats) - pos} floats left over"
    w["cls"] = w["embed"] if shared else w["cls"]
    cfg = dict(dim=dim, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, vocab=vocab, seq_len=seq_len)
    return cfg, w


def write_llama2c(path, cfg, w):
    vocab = cfg["vocab"] if cfg["shared"] else -cfg["vocab"]
    header = struct.pack("<7i", cfg["dim"], cfg["hidden"], cfg["layers"], cfg["heads"], cfg["kv_heads"], vocab, cfg["seq_len"])
    order = ["embed", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3", "rms_final", "freq_real", "freq_imag"]
    if not cfg["shared"]:
        order.append("cls")
    with open(path, "wb") as f:
        f.write(header)
        for name in order:
            f.write(np.ascontiguousarray(w[name], dtype="<f4").tobytes())


# ---------------------------------------------------------------- the two reference models


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def silu(x):
    return x / (1.0 + np.exp(-x))


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def hf_forward(cfg, w, input_ids, attention_mask, position_ids, inv_freq=None, attention_scaling=1.0):
    """LlamaForCausalLM.forward in float64. input_ids, attention_mask, position_ids: [B, T] → logits [B, T, V].
    inv_freq [hd/2] and attention_scaling (cos and sin are multiplied by it) replace plain RoPE's when given
    (rope_reference.py computes them for rope_scaling)."""
    B, T = input_ids.shape
    D, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or D // H
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    if inv_freq is None:
        inv_freq = 1.0 / theta ** (np.arange(0, hd, 2) / hd)
    angles = position_ids[..., None] * inv_freq  # [B, T, hd/2]
    emb = np.concatenate([angles, angles], axis=-1)[:, None]  # [B, 1, T, hd]
    cos, sin = np.cos(emb) * attention_scaling, np.sin(emb) * attention_scaling
    causal = np.tril(np.ones((T, T), dtype=bool))
    visible = causal[None, None] & (attention_mask[:, None, None, :] == 1)  # [B, 1, T, T]
    x = w["model.embed_tokens.weight"][input_ids]  # [B, T, D]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        heads = lambda m, n: (h @ w[p + f"self_attn.{m}_proj.weight"].T).reshape(B, T, n, hd).transpose(0, 2, 1, 3)
        q, k, v = heads("q", H), heads("k", KV), heads("v", KV)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k, v = np.repeat(k, H // KV, axis=1), np.repeat(v, H // KV, axis=1)  # repeat_kv
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd)
        scores = np.where(visible, scores, -1e30)
        attn = (softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(B, T, H * hd)
        x = x + attn @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = silu(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)
        x = x + gate @ w[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    return x @ head.T


def llama2c_forward(cfg, w, tokens):
    """run.c's forward, token by token with its KV cache, RoPE on adjacent pairs. tokens [T] → logits [T, V]."""
    D, H, KV = cfg["dim"], cfg["heads"], cfg["kv_heads"]
    hd = D // H
    keys = [[] for _ in range(cfg["layers"])]
    values = [[] for _ in range(cfg["layers"])]
    out = []
    for pos, tok in enumerate(tokens):
        x = w["embed"][tok].copy()
        for l in range(cfg["layers"]):
            h = rms_norm(x, w["rms_att"][l], 1e-5)
            q, k, v = w["wq"][l] @ h, w["wk"][l] @ h, w["wv"][l] @ h
            for vec in (q, k):
                for i in range(0, len(vec), 2):
                    angle = pos * (1.0 / 10000.0 ** ((i % hd) / hd))
                    a, b = vec[i], vec[i + 1]
                    vec[i], vec[i + 1] = a * np.cos(angle) - b * np.sin(angle), a * np.sin(angle) + b * np.cos(angle)
            keys[l].append(k)
            values[l].append(v)
            K, V = np.stack(keys[l]), np.stack(values[l])  # [pos+1, kv_dim]
            att = np.zeros(D)
            for head in range(H):
                kvh = head // (H // KV)
                qh = q[head * hd : (head + 1) * hd]
                probs = softmax(K[:, kvh * hd : (kvh + 1) * hd] @ qh / np.sqrt(hd))
                att[head * hd : (head + 1) * hd] = probs @ V[:, kvh * hd : (kvh + 1) * hd]
            x = x + w["wo"][l] @ att
            h = rms_norm(x, w["rms_ffn"][l], 1e-5)
            x = x + w["w2"][l] @ (silu(w["w1"][l] @ h) * (w["w3"][l] @ h))
        out.append(w["cls"] @ rms_norm(x, w["rms_final"], 1e-5))
    return np.stack(out)


# ---------------------------------------------------------------- fixtures


def random_hf_model(rng, cfg):
    """Random weights in HF names and [out, in] layout; norm weights near 1 so they matter."""
    D, H, KV, F, V = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = cfg.get("head_dim") or D // H
    w = {"model.embed_tokens.weight": rng.normal(0, 1.0, (V, D)), "model.norm.weight": 1 + 0.1 * rng.normal(size=D)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = 1 + 0.1 * rng.normal(size=D)
        w[p + "post_attention_layernorm.weight"] = 1 + 0.1 * rng.normal(size=D)
        for name, shape in [("q", (H * hd, D)), ("k", (KV * hd, D)), ("v", (KV * hd, D)), ("o", (D, H * hd))]:
            w[p + f"self_attn.{name}_proj.weight"] = rng.normal(0, 0.3, shape)
        for name, shape in [("gate", (F, D)), ("up", (F, D)), ("down", (D, F))]:
            w[p + f"mlp.{name}_proj.weight"] = rng.normal(0, 0.2, shape)
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = rng.normal(0, 0.2, (V, D))
    # Round to float32 first: the reference runs on exactly the weights the file holds.
    return {k: v.astype(np.float32).astype(np.float64) for k, v in w.items()}


def left_padded(rows, pad_id=0):
    """Left-pad id lists → input_ids, attention_mask, position_ids (counting real tokens; 0 on padding)."""
    T = max(len(r) for r in rows)
    ids = np.full((len(rows), T), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), T), dtype=np.int64)
    for b, r in enumerate(rows):
        ids[b, T - len(r) :] = r
        mask[b, T - len(r) :] = 1
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    return ids, mask, positions


def write_hf_case(out_dir, name, cfg, rows, seed):
    rng = np.random.default_rng(seed)
    w = random_hf_model(rng, cfg)
    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir, exist_ok=True)
    with open(os.path.join(case_dir, "config.json"), "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", **cfg}, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(case_dir, "model.safetensors"), w)
    ids, mask, positions = left_padded([[int(t) for t in rng.integers(0, cfg["vocab_size"], n)] for n in rows])
    logits = hf_forward(cfg, w, ids, mask, positions)
    write_safetensors(os.path.join(case_dir, "reference.safetensors"),
                      {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "logits": logits})
    print(f"{case_dir}: batch {ids.shape}, |logits| max {np.abs(logits).max():.3f}")


def write_llama2c_case(out_dir, seed):
    rng = np.random.default_rng(seed)
    cfg = dict(dim=24, hidden=40, layers=2, heads=6, kv_heads=2, vocab=37, seq_len=32, shared=False)
    D, F, L, hd = cfg["dim"], cfg["hidden"], cfg["layers"], cfg["dim"] // cfg["heads"]
    kv_dim = cfg["kv_heads"] * hd
    angles = np.arange(cfg["seq_len"])[:, None] * (1.0 / 10000.0 ** (np.arange(0, hd, 2) / hd))
    w = {
        "embed": rng.normal(0, 1, (cfg["vocab"], D)), "rms_att": 1 + 0.1 * rng.normal(size=(L, D)),
        "wq": rng.normal(0, 0.3, (L, D, D)), "wk": rng.normal(0, 0.3, (L, kv_dim, D)), "wv": rng.normal(0, 0.3, (L, kv_dim, D)),
        "wo": rng.normal(0, 0.3, (L, D, D)), "rms_ffn": 1 + 0.1 * rng.normal(size=(L, D)),
        "w1": rng.normal(0, 0.2, (L, F, D)), "w2": rng.normal(0, 0.2, (L, D, F)), "w3": rng.normal(0, 0.2, (L, F, D)),
        "rms_final": 1 + 0.1 * rng.normal(size=D), "freq_real": np.cos(angles), "freq_imag": np.sin(angles),
        "cls": rng.normal(0, 0.2, (cfg["vocab"], D)),
    }
    path = os.path.join(out_dir, "tiny-llama2c-untied.bin")
    write_llama2c(path, cfg, w)
    read_cfg, read_w = read_llama2c(path)  # the float32 values the file holds
    tokens = [int(t) for t in rng.integers(0, cfg["vocab"], 11)]
    logits = llama2c_forward(read_cfg, read_w, tokens)
    ids, mask, positions = left_padded([tokens])
    write_safetensors(os.path.join(out_dir, "tiny-llama2c-untied.reference.safetensors"),
                      {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "logits": logits[None]})
    print(f"{path}: {len(tokens)} tokens")


# Prompts for stories260K (token ids of its 512-piece vocabulary; 1 = BOS).
STORIES_PROMPTS = [
    [1],
    [1, 403, 407, 261, 378, 261, 3, 303, 289, 414, 1, 432],
    [1, 69, 102, 200, 300, 400, 500, 5, 9, 17, 33, 65, 129, 257, 511, 0, 2, 88, 77, 66, 55, 44, 33, 22],
]


def write_stories_case(out_dir, shared):
    path = os.path.join(shared, "models", "stories260K", "stories260K.bin")
    if not os.path.exists(path):
        print(f"skipping stories260K: {path} not found")
        return
    cfg, w = read_llama2c(path)
    ids, mask, positions = left_padded(STORIES_PROMPTS)
    logits = np.zeros(ids.shape + (cfg["vocab"],))
    for b, prompt in enumerate(STORIES_PROMPTS):
        logits[b, ids.shape[1] - len(prompt) :] = llama2c_forward(cfg, w, prompt)
    write_safetensors(os.path.join(out_dir, "stories260k.reference.safetensors"),
                      {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "logits": logits})
    print(f"stories260K: prompts of {[len(p) for p in STORIES_PROMPTS]} tokens")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.path.join(root, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(root, "packages", "llama-model", "test", "fixtures"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    base = dict(rms_norm_eps=1e-6, max_position_embeddings=64, bos_token_id=1, eos_token_id=2, hidden_act="silu")
    write_hf_case(args.out, "tiny-gqa-tied", dict(base, vocab_size=67, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                  num_attention_heads=6, num_key_value_heads=2, rope_theta=10000.0, tie_word_embeddings=True), rows=[9], seed=1)
    write_hf_case(args.out, "tiny-untied-padded", dict(base, vocab_size=53, hidden_size=32, intermediate_size=56, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=12, rope_theta=100.0, rms_norm_eps=1e-5,
                  tie_word_embeddings=False), rows=[7, 4, 1], seed=2)
    write_llama2c_case(args.out, seed=3)
    write_stories_case(args.out, args.shared)


if __name__ == "__main__":
    main()
