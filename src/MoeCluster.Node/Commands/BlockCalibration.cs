using System.Diagnostics;
using MoeCluster.Model;
using MoeCluster.Model.Layers;
using MoeCluster.Placement;
using static TorchSharp.torch;

namespace MoeCluster.Node.Commands;

/// <summary>Times the model's own blocks — the attention block with its KV cache, one routed expert, the router stage
/// (gate, grouping, combine, shared expert), the head with the logits' softmax and argmax — built with the model's
/// shapes and random weights, at the batch sizes to predict, on this machine (<see cref="MeasuredCosts"/> for
/// <see cref="CostModel"/>). Medians of repeated runs; attention cycles through one block per layer and experts through
/// a pool as large as the model's experts (up to 256 MB), so caches help only as much as serving gets.</summary>
public static class BlockCalibration
{
    const long PoolBytes = 256L << 20;

    /// <param name="sequences">Sequence counts to measure (decode batches, and prompts per prefill step).</param>
    /// <param name="promptLengths">Prompt lengths to measure prefill at (empty: decode only).</param>
    /// <param name="context">Cached tokens a decoding sequence attends to.</param>
    public static MeasuredCosts Measure(ModelConfig c, ScalarType dtype, IReadOnlyList<int> sequences, IReadOnlyList<int> promptLengths, int context)
    {
        using var _ = no_grad();
        var o = new ModuleOptions(dtype, CPU);
        int maxSequences = sequences.Max(), maxPrompt = promptLengths.DefaultIfEmpty(1).Max();
        int capacity = context + maxPrompt + 8;
        using var rotary = new RotaryEmbedding(c.HeadDim, capacity, c.RopeTheta, o);
        // One block and cache per layer, used in turn as a step does: each finds its weights as far from the cache as
        // serving leaves them.
        var layers = Enumerable.Range(0, c.NumLayers).Select(l =>
        {
            var block = new AttentionBlock(c, o);
            ModuleWeights.InitializeRandom(block, seed: 1 + l);
            return (Block: block, Cache: new KvCache(maxSequences, c.NumKvHeads, capacity, c.HeadDim, o));
        }).ToList();
        int layer = 0;

        var attentionPoints = new Dictionary<int, IReadOnlyList<(int, double)>>();
        foreach (int tokens in new[] { 1 }.Concat(promptLengths).Distinct())
            attentionPoints[tokens] = sequences.Select(b =>
            {
                var layout = new StepLayout(Enumerable.Range(0, b).Select(i => new SequenceSegment(i, tokens == 1 ? context / 2 : 0, tokens)).ToList());
                using var step = StepContext.Create(layout, rotary, c, CPU);
                using var x = randn([layout.TokenCount, c.HiddenSize]).to(dtype);
                return (b, Median(tokens == 1 ? 16 : 6, () =>
                {
                    using var scope = NewDisposeScope();
                    var (block, cache) = layers[layer++ % layers.Count];
                    block.Forward(x, step, cache);
                }));
            }).ToList();
        foreach (var (block, cache) in layers) { block.Dispose(); cache.Dispose(); }

        using var router = new MoeBlock(c, o, routedExperts: false);
        ModuleWeights.InitializeRandom(router, seed: 2);
        var rowCounts = sequences.SelectMany(b => new[] { 1 }.Concat(promptLengths).Select(t => b * t)).Distinct().Order().ToList();
        var routerPoints = rowCounts.Select(rows =>
        {
            using var x = randn([rows, c.HiddenSize]).to(dtype);
            return (rows, Median(8, () =>
            {
                using var scope = NewDisposeScope();
                using var groups = router.Route(x);
                var outputs = groups.Groups.Select(g => zeros([g.TokenIndices.shape[0], c.HiddenSize], dtype)).ToList();
                MoeBlock.Combine(x, groups, outputs, router.SharedOutput(x));
            }));
        }).ToList();

        // Experts: a pool of the model's expert shape (or a narrower one, scaled back, when one is very large).
        long expertBytes = 3L * c.HiddenSize * c.ExpertIntermediateSize * (dtype == ScalarType.Float32 ? 4 : 2);
        double scale = Math.Min(1.0, (double)PoolBytes / expertBytes);
        int width = Math.Max(1, (int)(c.ExpertIntermediateSize * scale));
        long allExperts = expertBytes * c.NumExperts * c.MoeLayers.Count();
        int pool = (int)Math.Clamp(Math.Min(allExperts, PoolBytes) / Math.Max(1, (long)(expertBytes * scale)), 1, 256);
        var experts = Enumerable.Range(0, pool).Select(i =>
        {
            var e = new ExpertMlp(c.HiddenSize, width, mixtralNames: true, o);
            ModuleWeights.InitializeRandom(e, seed: 10 + i);
            return e;
        }).ToList();
        int maxRows = Math.Max(1, rowCounts.Max() * c.TopK);
        var expertRows = Enumerable.Range(0, 12).Select(i => 1 << i).Where(r => r < maxRows).Append(maxRows).Distinct().ToList();
        int next = 0;
        var expertPoints = expertRows.Select(rows =>
        {
            using var x = randn([rows, c.HiddenSize]).to(dtype);
            return (rows, Median(rows <= 64 ? 24 : 6, () => { using var y = experts[next++ % pool].forward(x); }) / scale);
        }).ToList();
        foreach (var e in experts) e.Dispose();

        using var embedding = new Embedding(c.VocabSize, c.HiddenSize, o);
        using var head = new OutputHead(c, o, embedding);
        ModuleWeights.InitializeRandom(head, seed: 3);
        ModuleWeights.InitializeRandom(embedding, seed: 4);
        var headPoints = sequences.Select(b =>
        {
            using var x = randn([b, c.HiddenSize]).to(dtype);
            // The head, then what the gateway does with the logits: a softmax and the choice of each row's token.
            return (b, Median(8, () => { using var scope = NewDisposeScope(); head.forward(x).softmax(-1).argmax(-1); }));
        }).ToList();
        return new MeasuredCosts(attentionPoints, expertPoints, routerPoints, headPoints);
    }

    static double Median(int runs, Action body) => MachineCalibration.Median(2, runs, body);
}
