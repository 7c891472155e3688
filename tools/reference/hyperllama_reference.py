#!/usr/bin/env python3
"""Independent NumPy oracle for HyperLlama (Phang 2024, arXiv 2402.16817) on the project's checkpoint files.

Written from the paper's method and the documented file formats, not from our TypeScript, in float64:
  1. the hyper pass: the base Llama (Hugging Face LlamaForCausalLM: RMSNorm, rotate_half RoPE, grouped-query attention,
     SwiGLU) with the checkpoint's `hyper` LoRA active (PEFT: y = x Wᵀ + s · (x Aᵀ) Bᵀ, s = alpha/r or alpha/√r with
     use_rslora) over `[BOS] examples… <GIST_0..k-1>`, left-padded, positions counting each row's real tokens from 0,
     under the gist mask (Mu et al. 2023: row i sees column j ≤ i unless j is padding or some gist block lies wholly
     between them, starting after j and with its last gist before i; a padding row sees only itself). Gist ids V..V+k-1 embed as the checkpoint's gist rows.
  2. the prefix: every layer's keys and values at the k gist columns, [B, nKvHeads, k, headDim]:
       restart   keys re-rotated to positions 0..k-1; downstream positions start at k;
       continue  keys keep their hyper-pass positions; downstream positions start one past the last gist.
  3. the downstream pass: the same base weights with the hyper LoRA off and the `downstream` LoRA (if the checkpoint
     has one) on, over right-padded `context target` rows, attending to all k prefix columns and causally to its own
     real tokens, positions from the row's offset on.
  4. the answer loss: mean over all labelled tokens of the batch of −log softmax(logits[t])[label[t+1]] (labels are the
     target tokens, −100 elsewhere), logits over the V vocabulary rows only.

Files read (as saveHyperLlama and the trainer write them; see packages/hypernet/README.md):
  <ckpt>/hypernet_config.json          k, scheme, gist_ids, base_model {path, hash}, adapters {hyper, downstream}
  <ckpt>/gist_embeddings.safetensors   gist_embeddings [k, D]
  <ckpt>/<adapter>/adapter_config.json + adapter_model.safetensors   PEFT LoRA (lora_A [r, in], lora_B [out, r])
  <base>/config.json + model.safetensors   the Hugging Face Llama (the path recorded in the checkpoint, or --base)

Usage (from the repository root; needs only numpy):
  python3 tools/reference/hyperllama_reference.py [--fixtures packages/hypernet/test/fixtures/hyperllama-oracle]
    For each checkpoint folder there (restart/, continue/): reads batch.json, writes <ckpt>/reference.safetensors with
    the padded batch, the prefix (layers.{i}.keys / layers.{i}.values, F32), position_offsets, the downstream logits,
    and the answer loss (metadata `loss`, float64 text; also tensor `loss`).
  python3 tools/reference/hyperllama_reference.py --checkpoint runs/mt/final/hyperllama --base <hf llama dir> \
      --batch batch.json [--out ref.safetensors]
    Any checkpoint and batch ({"pad_id", "hyper": [[BOS, …]], "contexts": [[…]], "targets": [[…]]}, token ids).
The functions below (load_checkpoint, hyper_prefix, downstream_logits, answer_loss) are the reference to port a
checkpoint to PyTorch and continue training it there: see tools/reference/README.md.
"""
import argparse
import hashlib
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_reference import read_safetensors, rms_norm, rotate_half, silu, softmax, write_safetensors  # noqa: E402

IGNORE = -100
LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]

# ---------------------------------------------------------------- files


def read_json(path):
    with open(path) as f:
        return json.load(f)


def load_base(base_dir):
    cfg = read_json(os.path.join(base_dir, "config.json"))
    cfg.setdefault("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    cfg.setdefault("tie_word_embeddings", False)
    return cfg, read_safetensors(os.path.join(base_dir, "model.safetensors"))


def linear_names(cfg):
    names = [f"model.layers.{i}.{m}" for i in range(cfg["num_hidden_layers"]) for m in LINEARS]
    return names + ["lm_head"]


def peft_targets(name, target_modules):
    """PEFT's rule: a string is a regex matched against the whole module name; a list matches a name equal to an
    entry or ending in '.' + entry; 'all-linear' is every linear but lm_head."""
    if target_modules == "all-linear":
        return name != "lm_head"
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, name) is not None
    return any(name == t or name.endswith("." + t) for t in target_modules)


def load_adapter(adapter_dir, cfg):
    """→ {module name: (scale, A [r, in], B [out, r])}, checking the file's keys against target_modules."""
    c = read_json(os.path.join(adapter_dir, "adapter_config.json"))
    assert c["peft_type"] == "LORA" and c.get("bias", "none") == "none", f"{adapter_dir}: not a plain LoRA"
    assert not c.get("use_dora") and not c.get("fan_in_fan_out"), f"{adapter_dir}: DoRA / fan_in_fan_out unsupported"
    assert not c.get("rank_pattern") and not c.get("alpha_pattern"), f"{adapter_dir}: rank/alpha patterns unsupported"
    r, alpha = c["r"], c["lora_alpha"]
    scale = alpha / np.sqrt(r) if c.get("use_rslora") else alpha / r
    w = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    modules = [n for n in linear_names(cfg) if peft_targets(n, c["target_modules"])]
    expected = {f"base_model.model.{n}.lora_{x}.weight" for n in modules for x in "AB"}
    assert set(w) == expected, f"{adapter_dir}: keys {sorted(set(w) ^ expected)} differ from target_modules"
    return {n: (scale, w[f"base_model.model.{n}.lora_A.weight"], w[f"base_model.model.{n}.lora_B.weight"]) for n in modules}


def base_model_hash(w, cfg):
    """The project's base hash (hypernet_config.json base_model.hash): SHA-256 over the weights in name order, each as
    'name:shape;' then its float32 bytes, linears held [in, out] (the transpose of the file's [out, in])."""
    h = hashlib.sha256()
    for name in sorted(w):
        a = w[name]
        if name.endswith("_proj.weight") or name == "lm_head.weight":
            a = a.T
        h.update(f"{name}:{'x'.join(str(d) for d in a.shape)};".encode())
        h.update(np.ascontiguousarray(a, dtype="<f4").tobytes())
    return h.hexdigest()


def load_checkpoint(ckpt_dir, base_dir=None):
    hc = read_json(os.path.join(ckpt_dir, "hypernet_config.json"))
    assert hc["format"] == "hyperllama-hypernet", f"{ckpt_dir}: not a HyperLlama checkpoint"
    assert hc.get("downstream_view", "gists") == "gists", "only the standard downstream view (gists) is implemented"
    if base_dir is None:  # the recorded path: absolute, relative to the working directory, or to the checkpoint
        recorded = hc["base_model"]["path"]
        assert recorded, f"{ckpt_dir}: no base_model.path recorded; give --base"
        base_dir = recorded if os.path.isdir(recorded) else os.path.normpath(os.path.join(ckpt_dir, recorded))
    cfg, w = load_base(base_dir)
    digest = base_model_hash(w, cfg)
    assert digest == hc["base_model"]["hash"], f"{base_dir}: base hash {digest[:16]}… ≠ checkpoint's {hc['base_model']['hash'][:16]}…"
    gists = read_safetensors(os.path.join(ckpt_dir, "gist_embeddings.safetensors"))["gist_embeddings"]
    k = hc["k"]
    assert gists.shape == (k, cfg["hidden_size"]) and len(hc["gist_ids"]) == k
    down = hc["adapters"].get("downstream")
    return dict(
        cfg=cfg, w=w, k=k, scheme=hc["scheme"], gist_ids=list(hc["gist_ids"]), gists=gists,
        hyper=load_adapter(os.path.join(ckpt_dir, hc["adapters"]["hyper"]), cfg),
        downstream=load_adapter(os.path.join(ckpt_dir, down), cfg) if down else {},
    )


# ---------------------------------------------------------------- the model


def rope(x, positions, theta):
    """rotate_half RoPE. x [B, heads, T, hd], positions [B, T]."""
    hd = x.shape[-1]
    angles = positions[..., None] * (1.0 / theta ** (np.arange(0, hd, 2) / hd))  # [B, T, hd/2]
    emb = np.concatenate([angles, angles], axis=-1)[:, None]  # [B, 1, T, hd]
    return x * np.cos(emb) + rotate_half(x) * np.sin(emb)


def forward(ck, adapter, ids, positions, visible, prefix=None):
    """One pass of the base with `adapter` ({} = none). ids, positions [B, T]; visible [B, T, P+T] bool (P prefix
    columns first); prefix: per layer (keys after RoPE, values) [B, KV, P, hd]. Ids ≥ V embed as gist rows.
    → final hidden [B, T, D] (after the last RMSNorm), per layer (keys before RoPE, keys, values) [B, KV, T, hd]."""
    cfg, w = ck["cfg"], ck["w"]
    B, T = ids.shape
    D, H, KV, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps, theta, V = cfg["rms_norm_eps"], cfg["rope_theta"], cfg["vocab_size"]

    def lin(x, name, weight):
        y = x @ weight.T
        if name in adapter:
            s, A, Bm = adapter[name]
            y = y + s * (x @ A.T) @ Bm.T
        return y

    table = np.concatenate([w["model.embed_tokens.weight"], ck["gists"]], axis=0)  # [V + k, D]
    gist_row = {g: V + j for j, g in enumerate(ck["gist_ids"])}
    x = table[np.vectorize(lambda t: gist_row.get(int(t), int(t)))(ids)]  # [B, T, D]
    kv = []
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        heads = lambda m, n: lin(h, p + f"self_attn.{m}_proj", w[p + f"self_attn.{m}_proj.weight"]).reshape(B, T, n, hd).transpose(0, 2, 1, 3)
        q, k_pre, v = heads("q", H), heads("k", KV), heads("v", KV)
        q, k = rope(q, positions, theta), rope(k_pre, positions, theta)
        kv.append((k_pre, k, v))
        K, Vv = k, v
        if prefix is not None:
            K, Vv = np.concatenate([prefix[i][0], k], axis=2), np.concatenate([prefix[i][1], v], axis=2)
        K, Vv = np.repeat(K, H // KV, axis=1), np.repeat(Vv, H // KV, axis=1)  # query head h reads KV head h // (H/KV)
        scores = q @ K.transpose(0, 1, 3, 2) / np.sqrt(hd)
        scores = np.where(visible[:, None], scores, -np.inf)
        attn = (softmax(scores) @ Vv).transpose(0, 2, 1, 3).reshape(B, T, H * hd)
        x = x + lin(attn, p + "self_attn.o_proj", w[p + "self_attn.o_proj.weight"])
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = silu(lin(h, p + "mlp.gate_proj", w[p + "mlp.gate_proj.weight"])) * lin(h, p + "mlp.up_proj", w[p + "mlp.up_proj.weight"])
        x = x + lin(gate, p + "mlp.down_proj", w[p + "mlp.down_proj.weight"])
    return rms_norm(x, w["model.norm.weight"], eps), kv


def logits_of(ck, adapter, hidden):
    w = ck["w"]
    head = w["model.embed_tokens.weight"] if ck["cfg"]["tie_word_embeddings"] else w["lm_head.weight"]
    y = hidden @ head.T
    if "lm_head" in adapter:
        s, A, Bm = adapter["lm_head"]
        y = y + s * (hidden @ A.T) @ Bm.T
    return y  # [B, T, V]


# ---------------------------------------------------------------- masks and batches


def gist_visibility(ids, mask, gist_ids):
    """[B, T, T] bool: the gist mask (Mu et al. 2023) over left- or right-padded rows."""
    B, T = ids.shape
    vis = np.zeros((B, T, T), dtype=bool)
    is_gist = np.isin(ids, gist_ids) & (mask == 1)
    for b in range(B):
        blocks, t = [], 0  # (first, last) column of each maximal run of gists
        while t < T:
            if is_gist[b, t]:
                s = t
                while t < T and is_gist[b, t]:
                    t += 1
                blocks.append((s, t - 1))
            else:
                t += 1
        for i in range(T):
            if mask[b, i] == 0:
                vis[b, i, i] = True
                continue
            for j in range(i + 1):
                # tokens after a gist block cannot see behind it; the gists themselves still see the examples
                if mask[b, j] == 1 and not any(s > j and e < i for s, e in blocks):
                    vis[b, i, j] = True
    return vis


def hyper_batch(rows, gist_ids, pad_id):
    """[BOS] examples… rows → left-padded ids with the gists appended, mask, positions (real tokens from 0), gist columns."""
    full = [list(r) + list(gist_ids) for r in rows]
    H = max(len(r) for r in full)
    ids = np.full((len(full), H), pad_id, dtype=np.int64)
    mask = np.zeros((len(full), H), dtype=np.int64)
    for b, r in enumerate(full):
        ids[b, H - len(r):] = r
        mask[b, H - len(r):] = 1
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    gist_cols = np.array([[H - len(gist_ids) + j for j in range(len(gist_ids))] for _ in full])
    return ids, mask, positions, gist_cols


def downstream_batch(contexts, targets, pad_id):
    """`context target` rows right-padded; labels = the target tokens, −100 elsewhere."""
    rows = [list(c) + list(t) for c, t in zip(contexts, targets)]
    T = max(len(r) for r in rows)
    ids = np.full((len(rows), T), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), T), dtype=np.int64)
    labels = np.full((len(rows), T), IGNORE, dtype=np.int64)
    for b, r in enumerate(rows):
        ids[b, : len(r)] = r
        mask[b, : len(r)] = 1
        labels[b, len(contexts[b]) : len(r)] = targets[b]
    return ids, mask, labels


# ---------------------------------------------------------------- HyperLlama


def hyper_prefix(ck, ids, mask, positions, gist_cols, scheme=None):
    """The hyper pass and the gist prefix: per layer (keys, values) [B, KV, k, hd] and per-row downstream offsets."""
    scheme = scheme or ck["scheme"]
    _, kv = forward(ck, ck["hyper"], ids, positions, gist_visibility(ids, mask, ck["gist_ids"]))
    B, k = gist_cols.shape
    rows = np.arange(B)[:, None]
    if scheme == "restart":
        key_pos = np.tile(np.arange(k), (B, 1))  # re-rotated to 0..k-1
        offsets = np.full(B, k)
    elif scheme == "continue":
        key_pos = positions[rows, gist_cols]  # their hyper-pass positions
        offsets = key_pos[:, -1] + 1
    else:
        raise ValueError(f"scheme {scheme!r}")
    prefix = []
    for k_pre, _, v in kv:
        gk = k_pre[rows, :, gist_cols].transpose(0, 2, 1, 3)  # [B, KV, k, hd]
        gv = v[rows, :, gist_cols].transpose(0, 2, 1, 3)
        prefix.append((rope(gk, key_pos, ck["cfg"]["rope_theta"]), gv))
    return prefix, offsets


def downstream_logits(ck, prefix, offsets, ids, mask):
    """The downstream pass behind the prefix (hyper LoRA off, downstream LoRA on): logits [B, T, V]."""
    B, T = ids.shape
    P = prefix[0][0].shape[2]
    positions = offsets[:, None] + np.arange(T)[None]
    own = np.tril(np.ones((T, T), dtype=bool))[None] & (mask[:, None, :] == 1)
    own |= (mask[:, :, None] == 0) & np.eye(T, dtype=bool)[None]  # a padding row sees only itself
    visible = np.concatenate([np.ones((B, T, P), dtype=bool), own], axis=2)
    hidden, _ = forward(ck, ck["downstream"], ids, positions, visible, prefix)
    return logits_of(ck, ck["downstream"], hidden)


def answer_loss(logits, labels):
    """Mean next-token NLL over every labelled position of the batch."""
    lp = logits - logits.max(-1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    y = labels[:, 1:]
    valid = y != IGNORE
    picked = np.take_along_axis(lp[:, :-1], np.where(valid, y, 0)[..., None], axis=-1)[..., 0]
    return float(-(picked * valid).sum() / max(valid.sum(), 1))


# ---------------------------------------------------------------- reference files


def reference(ckpt_dir, batch, out, base_dir=None):
    ck = load_checkpoint(ckpt_dir, base_dir)
    hids, hmask, hpos, cols = hyper_batch(batch["hyper"], ck["gist_ids"], batch["pad_id"])
    prefix, offsets = hyper_prefix(ck, hids, hmask, hpos, cols)
    ids, mask, labels = downstream_batch(batch["contexts"], batch["targets"], batch["pad_id"])
    logits = downstream_logits(ck, prefix, offsets, ids, mask)
    loss = answer_loss(logits, labels)
    # Sensitivity: what a wrong hypernetwork would give (no hyper LoRA; the other position scheme).
    plain, _ = hyper_prefix(dict(ck, hyper={}), hids, hmask, hpos, cols)
    other, _ = hyper_prefix(ck, hids, hmask, hpos, cols, "continue" if ck["scheme"] == "restart" else "restart")
    lora_delta = max(np.abs(a[0] - b[0]).max() for a, b in zip(prefix, plain))
    scheme_delta = max(np.abs(a[0] - b[0]).max() for a, b in zip(prefix, other))
    assert lora_delta > 0.05 and scheme_delta > 0.05, "the fixture would not tell a wrong prefix from the right one"
    tensors = {
        "hyper.input_ids": hids, "hyper.attention_mask": hmask, "hyper.position_ids": hpos, "hyper.gist_positions": cols,
        "position_offsets": offsets, "input_ids": ids, "attention_mask": mask, "labels": labels, "logits": logits,
        "loss": np.array([loss]),
    }
    for i, (k, v) in enumerate(prefix):
        tensors[f"layers.{i}.keys"], tensors[f"layers.{i}.values"] = k, v
    write_safetensors(out, tensors, {"format": "hyperllama-oracle", "scheme": ck["scheme"], "loss": repr(loss)})
    print(f"{out}: scheme {ck['scheme']}, prefix {list(prefix[0][0].shape)} × {len(prefix)} layers, offsets {offsets.tolist()}, "
          f"answer loss {loss:.6f}; prefix moves by {lora_delta:.3f} without the hyper LoRA, {scheme_delta:.3f} in the other scheme")


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", default=os.path.join(root, "packages", "hypernet", "test", "fixtures", "hyperllama-oracle"))
    ap.add_argument("--checkpoint", help="one HyperLlama checkpoint directory (instead of --fixtures)")
    ap.add_argument("--base", help="its base model directory (default: base_model.path of the checkpoint)")
    ap.add_argument("--batch", help="batch JSON (with --checkpoint)")
    ap.add_argument("--out", help="reference file to write (default <checkpoint>/reference.safetensors)")
    args = ap.parse_args()
    if args.checkpoint:
        reference(args.checkpoint, read_json(args.batch), args.out or os.path.join(args.checkpoint, "reference.safetensors"), args.base)
        return
    batch = read_json(os.path.join(args.fixtures, "batch.json"))
    for name in ("restart", "continue"):
        ckpt = os.path.join(args.fixtures, name)
        reference(ckpt, batch, os.path.join(ckpt, "reference.safetensors"))


if __name__ == "__main__":
    main()
