using MoeCluster.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Training;

/// <summary>Logits [N, V] (float32, N = B·T) and the mean over MoE layers of the load-balancing loss (scalar).</summary>
public sealed record ForwardOutput(Tensor Logits, Tensor LoadBalancingLoss) : IDisposable
{
    public void Dispose() { Logits.Dispose(); LoadBalancingLoss.Dispose(); }
}

/// <summary>The model run over whole [B, T] sequences with full causal attention and no KV cache, for training and
/// held-out evaluation. It uses the model's own modules and weights — the MoE block's <see cref="MoeBlock.Route"/> and
/// <see cref="MoeBlock.Combine"/> — so it computes what <see cref="MoeTransformer.Forward"/> computes and gradients
/// reach every weight, the router's through the top-k gate weights.
/// Legend: B sequences, T tokens each, N = B·T, D hidden, H heads, G kv heads, r = H/G, Dh head dim, E experts, k top-k.</summary>
public static class TrainingForward
{
    /// <summary>tokens: [B, T] int64. <paramref name="tokensPerExpert"/> ([layer][expert]) accumulates routing counts.</summary>
    public static ForwardOutput Run(MoeTransformer model, Tensor tokens, long[][]? tokensPerExpert = null)
    {
        if (tokens.shape.Length != 2) throw new ArgumentException($"tokens must be [B, T], got [{string.Join(", ", tokens.shape)}]");
        using var scope = NewDisposeScope();
        var c = model.Config;
        int B = (int)tokens.shape[0], T = (int)tokens.shape[1];
        if (T > model.Rotary.MaxPositions) throw new ArgumentException($"sequences of {T} tokens exceed the {model.Rotary.MaxPositions} positions this model was set up for");
        var positions = arange(T, ScalarType.Int64, tokens.device).repeat(B);              // [N]
        var x = model.Embed(tokens.reshape(-1));                                             // [N, D]
        var balance = new List<Tensor>();
        for (int l = 0; l < c.NumLayers; l++)
        {
            var layer = model.Layers[l];
            var h = x + CausalAttention(layer.self_attn, c, model.Rotary, layer.input_layernorm.forward(x), B, T, positions);
            var n = layer.post_attention_layernorm.forward(h);
            Tensor ffn;
            if (layer.Moe is { } moe)
            {
                var (output, loss) = Moe(moe, c, n, tokensPerExpert?[l]);
                ffn = output;
                balance.Add(loss);
            }
            else ffn = layer.DenseMlp!.forward(n);
            x = h + ffn;
        }
        var logits = model.Head.forward(x);                                                          // [N, V]
        var aux = balance.Count > 0 ? stack(balance).mean() : zeros([], ScalarType.Float32, x.device);
        return new ForwardOutput(logits.MoveToOuterDisposeScope(), aux.MoveToOuterDisposeScope());
    }

    /// <summary>Mean cross-entropy of logits [N, V] against targets [B, T].</summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor targets) =>
        nn.functional.cross_entropy(logits, targets.reshape(-1));

    /// <summary>x: [N, D] normalised → [N, D]; the per-architecture q/k handling mirrors <see cref="Attention.Forward"/>.</summary>
    static Tensor CausalAttention(Attention a, ModelConfig c, RotaryEmbedding rotary, Tensor x, int B, int T, Tensor positions)
    {
        using var scope = NewDisposeScope();
        int N = B * T, H = c.NumHeads, G = c.NumKvHeads, Dh = c.HeadDim, r = H / G;
        var q = a.q_proj.forward(x);
        var k = a.k_proj.forward(x);
        var v = a.v_proj.forward(x);
        if (c.Architecture == Architecture.Olmoe)
        {
            q = a.q_norm!.forward(q);
            k = a.k_norm!.forward(k);
            if (c.ClipQkv is double clip) { q = q.clamp(-clip, clip); k = k.clamp(-clip, clip); v = v.clamp(-clip, clip); }
        }
        q = q.view(N, H, Dh);
        k = k.view(N, G, Dh);
        v = v.view(N, G, Dh);
        if (c.Architecture == Architecture.Qwen3Moe) { q = a.q_norm!.forward(q); k = a.k_norm!.forward(k); }
        q = rotary.Apply(q, positions).view(B, T, H, Dh).transpose(1, 2);                   // [B, H, T, Dh]
        // Query head h reads kv head h / r, as Hugging Face's repeat_kv lays them out.
        k = rotary.Apply(k, positions).view(B, T, G, Dh).transpose(1, 2).repeat_interleave(r, dim: 1);
        v = v.view(B, T, G, Dh).transpose(1, 2).repeat_interleave(r, dim: 1);
        var scores = q.matmul(k.transpose(-1, -2)) * (1.0 / Math.Sqrt(Dh));                  // [B, H, T, T]
        var queryPos = arange(T, ScalarType.Int64, x.device).view(T, 1);
        var keyPos = arange(T, ScalarType.Int64, x.device).view(1, T);
        var visible = keyPos <= queryPos;                                                    // [T, T]
        if (c.SlidingWindow is int w) visible = visible & (keyPos > queryPos - w);
        var probs = scores.to(ScalarType.Float32).masked_fill(visible.logical_not(), float.NegativeInfinity).softmax(-1).to(scores.dtype);
        var output = probs.matmul(v).transpose(1, 2).reshape(N, H * Dh);                     // [B, T, H, Dh] -> [N, H·Dh]
        return a.o_proj.forward(output).MoveToOuterDisposeScope();
    }

    /// <summary>x: [N, D] → ([N, D], load-balancing loss). The loss is Switch Transformer's E · Σₑ fₑ · Pₑ, with fₑ the
    /// share of the N·k routing slots that chose expert e and Pₑ the mean router probability of e; it is 1 when routing
    /// is uniform and grows as it concentrates.</summary>
    static (Tensor Output, Tensor Loss) Moe(MoeBlock block, ModelConfig c, Tensor x, long[]? tokensPerExpert)
    {
        using var scope = NewDisposeScope();
        int E = c.NumExperts;
        using var groups = block.Route(x, tokensPerExpert);
        var outputs = block.ExpertOutputs(x, groups);
        var output = MoeBlock.Combine(x, groups, outputs, block.SharedOutput(x));

        var meanProbability = block.gate.forward(x).to(ScalarType.Float32).softmax(-1).mean([0]);   // [E]
        long slots = groups.TokensPerExpert.Sum();
        var share = tensor(groups.TokensPerExpert.Select(n => (float)n / slots).ToArray(), ScalarType.Float32, x.device);   // [E]
        var loss = (share * meanProbability).sum() * E;
        return (output.MoveToOuterDisposeScope(), loss.MoveToOuterDisposeScope());
    }
}
