using MoeCluster.Model.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Layers;

/// <summary>
/// The router's top-k → renormalise → group for few tokens, in one pass on the host over the gate probabilities
/// [T, E]: TorchSharp needs about twenty small ops for it (sort, narrow, sum, div, a cast, a second sort, a bincount,
/// a host copy of the counts, narrow/contiguous per expert), each costing more than the arithmetic of a decode step's
/// routing. The semantics are <see cref="TopKRouter.Route"/>'s and <see cref="ExpertGroups.From"/>'s: the k largest
/// probabilities in descending order, ties to the lower expert, NaN above everything (a stable descending sort);
/// renormalised by their float32 sum when the architecture asks; rounded to the compute dtype; groups in ascending
/// expert order with tokens ascending. The softmax itself stays libtorch's (one op, and its exp is not the host's), so
/// the weights are bit for bit the TorchSharp path's for top-2; for k &gt; 2 the k-term sum may be ordered differently
/// from libtorch's reduction (one rounding step). The groups hold tokens and weights on the host and make tensors only
/// on demand.
/// Legend: T tokens, E experts, k experts per token.
/// </summary>
public static class HostRouting
{
    /// <summary>Most tokens routed on the host; above it the TorchSharp ops' per-call cost is repaid by their
    /// vectorised arithmetic. 0 turns host routing off (MOECLUSTER_HOST_ROUTING=0 does at start, for A/B runs).</summary>
    public static int MaxTokens { get; set; } = Environment.GetEnvironmentVariable("MOECLUSTER_HOST_ROUTING") == "0" ? 0 : 64;

    static readonly ThreadSwitch onThisThread = new();

    /// <summary>Routes this thread's steps with TorchSharp until disposed (A/B comparisons in one process).</summary>
    public static IDisposable OffOnThisThread() => onThisThread.Off();

    /// <summary>Whether x [T, D] against the router weight is routed here: few tokens, CPU, float32 or bfloat16, and no
    /// gradient wanted (training routes with TorchSharp, whose gate weights carry the router's gradient).</summary>
    public static bool Applies(Tensor x, Tensor weight) =>
        !onThisThread.IsOff && x.dim() == 2 && x.size(0) >= 1 && x.size(0) <= MaxTokens
        && x.device_type == DeviceType.CPU && ExpertRows.Supports(x.dtype)
        && !(is_grad_enabled() && (x.requires_grad || weight.requires_grad));

    /// <summary>probabilities [T, E] (CPU, float32) → the groups, with weights in <paramref name="dtype"/>; the
    /// routing trace (the experts and each token's gate entropy) when <paramref name="trace"/> is asked for.</summary>
    public static unsafe ExpertGroups Route(Tensor probabilities, int topK, bool normalise, ScalarType dtype, bool trace, out RoutingTrace? routingTrace)
    {
        if (probabilities.dim() != 2 || probabilities.dtype != ScalarType.Float32 || probabilities.device_type != DeviceType.CPU)
            throw new ArgumentException($"host routing takes CPU float32 probabilities [T, E], got {probabilities.dtype} [{string.Join(", ", probabilities.shape)}]");
        int T = (int)probabilities.size(0), E = (int)probabilities.size(1);
        if (topK < 1 || topK > E) throw new ArgumentOutOfRangeException(nameof(topK), $"top-{topK} of {E} experts");
        using var pc = probabilities.contiguous();
        var data = new ReadOnlySpan<float>(TensorMemory.Data(pc), T * E);

        var chosen = new int[T * topK];
        var weights = new float[T * topK];
        var entropy = trace ? new float[T] : null;
        Span<bool> taken = E <= 256 ? stackalloc bool[E] : new bool[E];
        for (int t = 0; t < T; t++)
        {
            var p = data.Slice(t * E, E);
            if (entropy is not null) entropy[t] = Entropy(p);
            taken.Clear();
            float sum = 0;
            for (int j = 0; j < topK; j++)
            {
                int best = -1;
                for (int e = 0; e < E; e++)
                    if (!taken[e] && (best < 0 || Larger(p[e], p[best]))) best = e;
                taken[best] = true;
                chosen[t * topK + j] = best;
                weights[t * topK + j] = p[best];
                sum += p[best];
            }
            for (int j = 0; j < topK; j++)
            {
                float w = weights[t * topK + j];
                if (normalise) w /= sum;
                weights[t * topK + j] = dtype == ScalarType.BFloat16 ? BFloat16Bits.Rounded(w) : w;
            }
        }

        var counts = new long[E];
        foreach (int e in chosen) counts[e]++;
        var tokens = new long[E][];
        var gates = new float[E][];
        var filled = new int[E];
        for (int e = 0; e < E; e++)
            if (counts[e] > 0) { tokens[e] = new long[counts[e]]; gates[e] = new float[counts[e]]; }
        for (int i = 0; i < chosen.Length; i++)   // row-major: tokens ascending within each expert
        {
            int e = chosen[i], at = filled[e]++;
            tokens[e][at] = i / topK;
            gates[e][at] = weights[i];
        }
        var groups = new List<ExpertGroup>();
        for (int e = 0; e < E; e++)
            if (counts[e] > 0) groups.Add(new ExpertGroup(e, tokens[e], gates[e], dtype));
        routingTrace = trace ? new RoutingTrace(topK, chosen, entropy!) : null;
        return new ExpertGroups(groups, counts);
    }

    /// <summary>topk's order: NaN above everything, then by value.</summary>
    static bool Larger(float a, float b) => (float.IsNaN(a) && !float.IsNaN(b)) || a > b;

    /// <summary>H = −Σ p ln p in nats, with p ln p → 0 as p → 0 (a softmax can underflow to exactly 0).</summary>
    static float Entropy(ReadOnlySpan<float> p)
    {
        float h = 0;
        foreach (float v in p) h += v * MathF.Log(MathF.Max(v, 1e-30f));
        return -h;
    }
}
