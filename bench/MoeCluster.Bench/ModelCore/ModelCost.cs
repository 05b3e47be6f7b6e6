using MoeCluster.Model;

namespace MoeCluster.Bench.ModelCore;

/// <summary>The work a step needs, counted from the config rather than from what our code happens to do, so the
/// ratios show waste: 2 FLOPs per active weight per token, causal attention pairs only, and the bytes of weights a
/// step must read (each active weight once) plus the KV-cache entries it attends to.
/// Legend: D hidden, H heads, G kv heads, Dh head dim, E experts, k active experts, I expert width, V vocab, L keys.</summary>
public sealed class ModelCost(ModelConfig c)
{
    long D => c.HiddenSize;

    /// <summary>q, k, v, o projections of one layer.</summary>
    public long AttentionParams => D * c.NumHeads * c.HeadDim + 2 * D * c.NumKvHeads * c.HeadDim + (long)c.NumHeads * c.HeadDim * D;
    public long RouterParams => (long)c.NumExperts * D;
    /// <summary>w1, w3, w2 of one expert.</summary>
    public long ExpertParams => 3 * D * c.ExpertIntermediateSize;
    public long HeadParams => D * c.VocabSize;

    /// <summary>Matmul weights one token touches in one layer: attention, router, its k experts.</summary>
    public long LayerActiveParams => AttentionParams + RouterParams + c.TopK * ExpertParams;

    /// <summary>QKᵀ and PV for one query over <paramref name="keys"/> keys, all heads, one layer.</summary>
    double AttentionScoreFlops(double keys) => 4.0 * c.NumHeads * c.HeadDim * keys;

    /// <summary>A prompt of <paramref name="n"/> tokens from position 0; logits for its last token only.</summary>
    public double PrefillFlops(int n) =>
        c.NumLayers * (2.0 * n * LayerActiveParams + AttentionScoreFlops(n * (n + 1) / 2.0)) + 2.0 * HeadParams;

    /// <summary>One decode token attending to <paramref name="keys"/> positions (itself included), with its logits.</summary>
    public double DecodeFlops(double keys) =>
        c.NumLayers * (2.0 * LayerActiveParams + AttentionScoreFlops(keys)) + 2.0 * HeadParams;

    /// <summary>Weights a step must read: every attention and router weight, the experts that received at least one
    /// token (<paramref name="activeExpertsPerLayer"/>, averaged over steps), norms, the LM head, one embedding row per
    /// token; plus <paramref name="cachedKeys"/> key/value entries per layer read from the KV cache.</summary>
    public double StepBytes(double activeExpertsPerLayer, int tokens, double cachedKeys, int elementSize)
    {
        double layer = AttentionParams + RouterParams + activeExpertsPerLayer * ExpertParams + 2 * D;
        double weights = c.NumLayers * layer + HeadParams + D + (double)tokens * D;
        double kv = c.NumLayers * 2.0 * c.NumKvHeads * c.HeadDim * cachedKeys;
        return (weights + kv) * elementSize;
    }

    public long TotalParams => c.NumLayers * (AttentionParams + RouterParams + c.NumExperts * ExpertParams + 2 * D) + 2 * HeadParams + D;
}
