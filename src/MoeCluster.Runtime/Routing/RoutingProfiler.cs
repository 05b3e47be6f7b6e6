using MoeCluster.Model;
using MoeCluster.Model.Layers;
using MoeCluster.Placement;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Routing;

/// <summary>Routing statistics of a model over token sequences, computed in one process with the model core
/// (<c>moecluster routing-stats</c>): each sequence is prefilled as one segment of a step, several per step, and every
/// MoE block reports its choices as the cluster's routers do, so the numbers are those a gateway would count serving
/// the same tokens. It also records each expert's largest output activation, which only a profile has (the experts of
/// a cluster run on other nodes than its gateways).</summary>
public static class RoutingProfiler
{
    public static LayerRouting AtLayer(this RoutingTrace trace, int layer) => new(layer, trace.TopK, trace.Experts, trace.Entropy);

    /// <param name="sequences">Token ids of each sequence (each at most the model's positions).</param>
    /// <param name="perStep">Sequences prefilled together in one step.</param>
    public static RoutingSnapshot Profile(MoeTransformer model, IReadOnlyList<IReadOnlyList<int>> sequences, int perStep = 8, string? source = null, Action<int, int>? progress = null)
    {
        var c = model.Config;
        var statistics = new RoutingStatistics(c.MoeLayers.ToList(), c.NumExperts, c.TopK, windowSteps: int.MaxValue);
        var traces = new List<LayerRouting>();
        var blocks = c.MoeLayers.Select(l => (Layer: l, Block: model.Layers[l].Moe!)).ToList();
        foreach (var (layer, block) in blocks)
        {
            block.OnRouted = t => traces.Add(t.AtLayer(layer));
            // The largest |down_proj output| per expert: super experts show up as rare, huge outliers here.
            block.OnExpertOutput = (expert, y) => statistics.RecordExpertOutput(layer, expert, y.abs().max().to(ScalarType.Float32).item<float>());
        }
        try
        {
            var longest = sequences.Count == 0 ? 1 : sequences.Max(s => s.Count);
            var caches = model.CreateCaches(Math.Min(perStep, Math.Max(1, sequences.Count)), Math.Max(1, longest));
            try
            {
                for (int start = 0; start < sequences.Count; start += perStep)
                {
                    var batch = Enumerable.Range(start, Math.Min(perStep, sequences.Count - start)).Where(i => sequences[i].Count > 0).ToList();
                    if (batch.Count == 0) continue;
                    var layout = new StepLayout(batch.Select((_, slot) => new SequenceSegment(slot, 0, sequences[batch[slot]].Count)).ToList());
                    var tokens = batch.SelectMany(i => sequences[i]).ToList();
                    var rows = batch.SelectMany(i => Enumerable.Repeat((long)i, sequences[i].Count)).ToList();
                    using (var scope = NewDisposeScope()) model.ForwardTokens(tokens, layout, caches);
                    statistics.RecordStep(traces, rows);
                    traces.Clear();
                    progress?.Invoke(start + batch.Count, sequences.Count);
                }
            }
            finally { foreach (var cache in caches) cache.Dispose(); }
        }
        finally { foreach (var (_, block) in blocks) { block.OnRouted = null; block.OnExpertOutput = null; } }
        return statistics.Snapshot(source);
    }
}
