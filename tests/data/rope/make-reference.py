#!/usr/bin/env python3
"""Reference yarn rotary tables for RopeScalingSpec: transformers' _compute_yarn_parameters
(src/transformers/modeling_rope_utils.py), line for line with numpy float32 standing in for torch float32, on the
rope settings real checkpoints ship. Writes yarn.json: per case the inverse frequencies and the attention factor.

    python3 tests/data/rope/make-reference.py     # Debian's python3 with python3-numpy
"""
import json
import math
import os

import numpy as np

CASES = {
    # Qwen3 (and Qwen3-MoE) model cards: factor 4 over the trained 32k.
    "qwen3-yarn-4x": {"head_dim": 128, "rope_theta": 1000000.0, "max_position_embeddings": 131072,
                      "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}},
    # DeepSeek-V3 style: mscale and mscale_all_dim, beta_fast/beta_slow given.
    "deepseek-style-mscale": {"head_dim": 64, "rope_theta": 10000.0, "max_position_embeddings": 163840,
                              "rope_scaling": {"type": "yarn", "factor": 40, "beta_fast": 32, "beta_slow": 1, "mscale": 1.0,
                                               "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096}},
    # No factor: the ratio of max_position_embeddings to the original is used; an explicit attention_factor.
    "ratio-and-attention-factor": {"head_dim": 32, "rope_theta": 500000.0, "max_position_embeddings": 65536,
                                   "rope_scaling": {"rope_type": "yarn", "factor": None, "attention_factor": 1.25,
                                                    "original_max_position_embeddings": 8192, "truncate": False}},
}


def compute_yarn_parameters(head_dim, rope_theta, max_position_embeddings, p):
    base = rope_theta
    dim = int(head_dim * 1.0)
    factor = p.get("factor")
    attention_factor = p.get("attention_factor")
    mscale = p.get("mscale")
    mscale_all_dim = p.get("mscale_all_dim")
    original_max_position_embeddings = p.get("original_max_position_embeddings") or max_position_embeddings
    if factor is None:
        factor = max_position_embeddings / original_max_position_embeddings

    def get_mscale(scale, mscale=1):
        if scale <= 1:
            return 1.0
        return 0.1 * mscale * math.log(scale) + 1.0

    if attention_factor is None:
        if mscale and mscale_all_dim:
            attention_factor = float(get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim))
        else:
            attention_factor = get_mscale(factor)
    beta_fast = p.get("beta_fast") or 32
    beta_slow = p.get("beta_slow") or 1

    def find_correction_dim(num_rotations, dim, base, max_position_embeddings):
        return (dim * math.log(max_position_embeddings / (num_rotations * 2 * math.pi))) / (2 * math.log(base))

    def find_correction_range(low_rot, high_rot, dim, base, max_position_embeddings, truncate):
        low = find_correction_dim(low_rot, dim, base, max_position_embeddings)
        high = find_correction_dim(high_rot, dim, base, max_position_embeddings)
        if truncate:
            low = math.floor(low)
            high = math.ceil(high)
        return max(low, 0), min(high, dim - 1)

    def linear_ramp_factor(min, max, dim):
        if min == max:
            max += 0.001
        linear_func = (np.arange(dim, dtype=np.float32) - np.float32(min)) / np.float32(max - min)
        return np.clip(linear_func, 0, 1)

    pos_freqs = np.float32(base) ** (np.arange(0, dim, 2).astype(np.float32) / np.float32(dim))
    inv_freq_extrapolation = np.float32(1.0) / pos_freqs
    inv_freq_interpolation = np.float32(1.0) / (np.float32(factor) * pos_freqs)
    truncate = p.get("truncate", True)
    low, high = find_correction_range(beta_fast, beta_slow, dim, base, original_max_position_embeddings, truncate)
    inv_freq_extrapolation_factor = np.float32(1) - linear_ramp_factor(low, high, dim // 2).astype(np.float32)
    inv_freq = inv_freq_interpolation * (1 - inv_freq_extrapolation_factor) + inv_freq_extrapolation * inv_freq_extrapolation_factor
    return inv_freq.astype(np.float32), attention_factor


def main():
    out = {}
    for name, case in CASES.items():
        inv_freq, attention = compute_yarn_parameters(case["head_dim"], case["rope_theta"], case["max_position_embeddings"], case["rope_scaling"])
        out[name] = {**case, "inv_freq": [float(x) for x in inv_freq], "attention_factor": attention}
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "yarn.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
