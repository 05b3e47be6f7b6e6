using MoeCluster.Model;
using MoeCluster.Model.Layers;
using static TorchSharp.torch;

namespace MoeCluster.TestSupport;

/// <summary>
/// Makes one expert of every MoE layer hot for chosen tokens, to exercise and benchmark hot-expert replication.
/// A fixed unit direction u is added to the embedding of every token, +strength·u for "hot" tokens and −strength·u
/// for the others, and each MoE layer's router gate row of the hot expert becomes gateScale·u. The residual stream keeps
/// the u component through the layers, so the hot expert's logit is large and positive for hot tokens (it is in every
/// such token's top-k: with top-2 it receives half of all token-expert assignments) and negative for the rest.
/// </summary>
public static class SkewedRouting
{
    public static void Apply(MoeTransformer model, int hotExpert, Func<int, bool> isHotToken, double strength = 3.0, double gateScale = 8.0, long seed = 11)
    {
        var c = model.Config;
        var names = new WeightNames(c.Architecture);
        var parameters = ModuleWeights.Named(model).ToDictionary(p => p.Key, p => p.Value);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        using var generator = new Generator((ulong)seed);
        var u = randn([c.HiddenSize], ScalarType.Float32, generator: generator);
        u = u / u.norm();

        var embedding = parameters["model.embed_tokens.weight"];                        // [V, D]
        var sign = tensor(Enumerable.Range(0, c.VocabSize).Select(t => isHotToken(t) ? (float)strength : (float)-strength).ToArray());
        embedding.add_(sign.unsqueeze(1) * u.unsqueeze(0));
        foreach (var layer in c.MoeLayers)
        {
            var gate = parameters[names.FeedForwardPrefix(layer) + "gate.weight"];       // [E, D]
            // The other experts' rows lose their u component, so the rest of each token's top-k still depends on the
            // token (the other half of the assignments spreads over them) instead of following u too.
            gate.sub_(gate.matmul(u).unsqueeze(1) * u.unsqueeze(0));
            gate[hotExpert].copy_(u * gateScale);
        }
    }

    /// <summary>Share of the token-expert assignments that go to <paramref name="expert"/> in each MoE layer when
    /// the model runs over <paramref name="tokens"/> as one sequence.</summary>
    public static IReadOnlyDictionary<int, double> ShareOf(MoeTransformer model, int expert, int[] tokens) =>
        Shares(model, tokens).ToDictionary(p => p.Key, p => p.Value[expert]);

    /// <summary>Share of the token-expert assignments of each expert ([expert]) in each MoE layer.</summary>
    public static IReadOnlyDictionary<int, double[]> Shares(MoeTransformer model, int[] tokens)
    {
        var c = model.Config;
        var counts = Enumerable.Range(0, c.NumLayers).Select(_ => new long[c.NumExperts]).ToArray();
        using var scope = NewDisposeScope();
        var caches = model.CreateCaches(1, tokens.Length);
        try { model.Forward(tensor(tokens.Select(t => (long)t).ToArray()), StepLayout.Single(0, 0, tokens.Length), caches, counts); }
        finally { foreach (var cache in caches) cache.Dispose(); }
        return c.MoeLayers.ToDictionary(l => l, l => counts[l].Select(n => (double)n / counts[l].Sum()).ToArray());
    }
}
