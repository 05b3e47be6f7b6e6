namespace MoeCluster.Placement;

/// <summary>
/// Routing statistics over a window of steps, per MoE layer (Graph of Tokens, OpenMoE): the gate's routing entropy,
/// tokens per expert, how often two experts are chosen by the same token (co-activation, within a layer and from a
/// layer to the next MoE layer), how much a sequence's choice changes from one token to the next (routing fluctuation),
/// and — given where experts live — how many nodes a token's experts span.
/// </summary>
/// <remarks>
/// <para>The window is two halves: counts go into the current half; when it holds W/2 steps it becomes the previous
/// half and the one before is dropped, so a snapshot covers the last W/2 to W steps without keeping every step
/// (co-activation counts are E² per layer). W = <see cref="int.MaxValue"/> keeps everything (offline profiles).</para>
/// <para>Memory: 2 halves × layers × (2E² + E) counters; 58 layers of 256 experts (DeepSeek-V3) is about 120 MB, Mixtral
/// 8x7B about 0.2 MB.</para>
/// <para>Fluctuation compares consecutive rows of one sequence: the rows of a sequence within a step are consecutive
/// tokens, and its first row in a step follows its last row in the step before. A sequence absent from a step is
/// forgotten (it finished), so a new sequence reusing an id starts afresh. Mutable and not thread-safe: one owner.</para>
/// </remarks>
public sealed class RoutingStatistics
{
    private readonly int[] _layers;
    private readonly Dictionary<int, int> _slotOf = [];
    private readonly int _experts;
    private readonly int _topK;
    private readonly long _halfWindow;
    private Counts _current;
    private Counts? _previous;
    private Dictionary<long, int[]?[]> _lastRowOf = [];

    /// <summary>Statistics for the MoE layers <paramref name="moeLayers"/> of a model with <paramref name="experts"/>
    /// experts per layer and top-<paramref name="topK"/> routing, over windows of <paramref name="windowSteps"/> steps.</summary>
    /// <exception cref="ArgumentException">No layer, a repeated layer, or a count below 1.</exception>
    public RoutingStatistics(IReadOnlyList<int> moeLayers, int experts, int topK, int windowSteps = 1000)
    {
        ArgumentNullException.ThrowIfNull(moeLayers);
        ArgumentOutOfRangeException.ThrowIfLessThan(experts, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(topK, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(topK, experts);
        ArgumentOutOfRangeException.ThrowIfLessThan(windowSteps, 2);
        if (moeLayers.Count == 0)
            throw new ArgumentException("A model without MoE layers has no routing to count.", nameof(moeLayers));
        _layers = moeLayers.Order().ToArray();
        for (var i = 0; i < _layers.Length; i++)
            if (!_slotOf.TryAdd(_layers[i], i))
                throw new ArgumentException($"MoE layer {_layers[i]} is listed twice.", nameof(moeLayers));
        _experts = experts;
        _topK = topK;
        _halfWindow = windowSteps == int.MaxValue ? long.MaxValue : windowSteps / 2;
        WindowSteps = windowSteps;
        _current = new Counts(_layers.Length, experts);
    }

    /// <summary>W, the longest stretch of steps a snapshot covers.</summary>
    public int WindowSteps { get; }

    /// <summary>Steps recorded since this object was created.</summary>
    public long TotalSteps { get; private set; }

    /// <summary>
    /// Adds one step. <paramref name="rowSequence"/> names the sequence of every row (rows of one sequence in token
    /// order). <paramref name="nodeOf"/>, when given, says which node holds an expert now (null: not known), for
    /// nodes per token and co-located pairs.
    /// </summary>
    /// <exception cref="ArgumentException">A layer is not a MoE layer of this model, appears twice, or its arrays do not
    /// match the rows and top-k; or an expert index is out of range. Nothing is recorded then.</exception>
    public void RecordStep(IReadOnlyList<LayerRouting> layers, IReadOnlyList<long> rowSequence, Func<ExpertId, string?>? nodeOf = null)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(rowSequence);
        var rows = rowSequence.Count;
        var bySlot = new LayerRouting?[_layers.Length];
        foreach (var routing in layers)
        {
            if (!_slotOf.TryGetValue(routing.Layer, out var slot))
                throw new ArgumentException($"Layer {routing.Layer} is not a MoE layer of this model (MoE layers: {string.Join(", ", _layers)}).", nameof(layers));
            if (bySlot[slot] is not null)
                throw new ArgumentException($"Layer {routing.Layer} appears twice in one step.", nameof(layers));
            if (routing.TopK != _topK || routing.Experts.Length != rows * _topK || routing.Entropy.Length != rows)
                throw new ArgumentException(
                    $"Layer {routing.Layer}: {routing.Experts.Length} expert choices and {routing.Entropy.Length} entropies for {rows} rows of top-{routing.TopK}; expected {rows * _topK} and {rows} with top-{_topK}.", nameof(layers));
            foreach (var e in routing.Experts)
                if ((uint)e >= (uint)_experts)
                    throw new ArgumentException($"Layer {routing.Layer} chose expert {e}; the model has experts 0 to {_experts - 1}.", nameof(layers));
            bySlot[slot] = routing;
        }

        var sorted = new int[_topK];
        var nodes = new string?[_topK];
        var lastRowOf = new Dictionary<long, int[]?[]>();
        for (var slot = 0; slot < _layers.Length; slot++)
        {
            if (bySlot[slot] is not { } routing)
                continue;
            var counts = _current.Layers[slot];
            var next = slot + 1 < _layers.Length ? bySlot[slot + 1] : null;
            for (var row = 0; row < rows; row++)
            {
                routing.Experts.AsSpan(row * _topK, _topK).CopyTo(sorted);
                Array.Sort(sorted);
                counts.Tokens++;
                counts.EntropySum += routing.Entropy[row];
                for (var i = 0; i < _topK; i++)
                {
                    counts.Load[sorted[i]]++;
                    for (var j = i + 1; j < _topK; j++)
                        if (sorted[i] != sorted[j])
                            counts.Pairs[sorted[i] * _experts + sorted[j]]++;
                }
                if (next is not null)
                    for (var i = 0; i < _topK; i++)
                        for (var j = 0; j < _topK; j++)
                            counts.Next[sorted[i] * _experts + next.Experts[row * _topK + j]]++;
                Fluctuation(counts, slot, rowSequence[row], sorted, lastRowOf);
                if (nodeOf is not null)
                    Nodes(counts, routing.Layer, sorted, nodes, nodeOf);
            }
        }
        _lastRowOf = lastRowOf;
        TotalSteps++;
        if (++_current.Steps >= _halfWindow)
        {
            _previous = _current;
            _current = new Counts(_layers.Length, _experts);
        }
    }

    /// <summary>Records the largest |activation| seen in one output of a routed expert (its down_proj output), for
    /// super-expert detection (<see cref="SuperExperts"/>).</summary>
    /// <exception cref="ArgumentException">The layer is not a MoE layer, the expert is out of range, or the value is not finite.</exception>
    public void RecordExpertOutput(int layer, int expert, double maxAbs)
    {
        if (!_slotOf.TryGetValue(layer, out var slot))
            throw new ArgumentException($"Layer {layer} is not a MoE layer of this model.", nameof(layer));
        if ((uint)expert >= (uint)_experts)
            throw new ArgumentException($"Expert {expert} is outside 0 to {_experts - 1}.", nameof(expert));
        if (!double.IsFinite(maxAbs) || maxAbs < 0)
            throw new ArgumentException($"{maxAbs} is not an activation magnitude.", nameof(maxAbs));
        var counts = _current.Layers[slot];
        counts.MaxOutput[expert] = Math.Max(counts.MaxOutput[expert], maxAbs);
        counts.OutputsSeen = true;
    }

    private void Fluctuation(LayerCounts counts, int slot, long sequence, int[] sorted, Dictionary<long, int[]?[]> lastRowOf)
    {
        if (!lastRowOf.TryGetValue(sequence, out var last))
        {
            // First row of this sequence in this step: its predecessor is its last row of the step before, if any.
            last = _lastRowOf.TryGetValue(sequence, out var before) ? before : new int[]?[_layers.Length];
            lastRowOf[sequence] = last;
        }
        if (last[slot] is { } previous)
        {
            var kept = 0;
            foreach (var e in sorted)
                if (Array.IndexOf(previous, e) >= 0)
                    kept++;
            counts.Transitions++;
            counts.ChangedShare += (double)(_topK - kept) / _topK;
            sorted.CopyTo(previous, 0);
        }
        else
        {
            last[slot] = (int[])sorted.Clone();
        }
    }

    private void Nodes(LayerCounts counts, int layer, int[] sorted, string?[] nodes, Func<ExpertId, string?> nodeOf)
    {
        var distinct = 0;
        for (var i = 0; i < _topK; i++)
        {
            nodes[i] = nodeOf(new ExpertId(layer, sorted[i])) ?? "unplaced";
            var seen = false;
            for (var j = 0; j < i; j++)
            {
                if (!string.Equals(nodes[j], nodes[i], StringComparison.Ordinal))
                    continue;
                seen = true;
                if (sorted[j] != sorted[i])
                    counts.ColocatedPairs++;
            }
            if (!seen)
                distinct++;
            for (var j = 0; j < i; j++)
                if (sorted[j] != sorted[i])
                    counts.PlacedPairs++;
        }
        counts.PlacedRows++;
        counts.NodesSum += distinct;
    }

    /// <summary>The statistics over the window now (the previous half and the current one).</summary>
    public RoutingSnapshot Snapshot(string? source = null)
    {
        var layers = new List<LayerRoutingStatistics>(_layers.Length);
        for (var slot = 0; slot < _layers.Length; slot++)
        {
            var c = _current.Layers[slot];
            var p = _previous?.Layers[slot];
            long Sum(Func<LayerCounts, long> f) => f(c) + (p is null ? 0 : f(p));
            double SumD(Func<LayerCounts, double> f) => f(c) + (p is null ? 0 : f(p));
            var tokens = Sum(x => x.Tokens);
            var load = new long[_experts];
            var pairs = new long[_experts][];
            var next = slot + 1 < _layers.Length ? new long[_experts][] : null;
            for (var a = 0; a < _experts; a++)
            {
                load[a] = c.Load[a] + (p?.Load[a] ?? 0);
                pairs[a] = new long[_experts];
                if (next is not null)
                    next[a] = new long[_experts];
            }
            for (var a = 0; a < _experts; a++)
                for (var b = 0; b < _experts; b++)
                {
                    var i = a * _experts + b;
                    if (a < b)
                        pairs[a][b] = pairs[b][a] = c.Pairs[i] + (p?.Pairs[i] ?? 0);
                    if (next is not null)
                        next[a][b] = c.Next[i] + (p?.Next[i] ?? 0);
                }
            double[]? maxOutput = null;
            if (c.OutputsSeen || p?.OutputsSeen == true)
                maxOutput = Enumerable.Range(0, _experts).Select(e => Math.Max(c.MaxOutput[e], p?.MaxOutput[e] ?? 0)).ToArray();
            var transitions = Sum(x => x.Transitions);
            var placedRows = Sum(x => x.PlacedRows);
            var placedPairs = Sum(x => x.PlacedPairs);
            layers.Add(new LayerRoutingStatistics
            {
                Layer = _layers[slot],
                Tokens = tokens,
                MeanEntropy = tokens == 0 ? 0 : SumD(x => x.EntropySum) / tokens,
                Load = load,
                Coactivation = pairs,
                NextLayer = next is null ? null : _layers[slot + 1],
                NextLayerCoactivation = next,
                Fluctuation = transitions == 0 ? 0 : SumD(x => x.ChangedShare) / transitions,
                Transitions = transitions,
                NodesPerToken = placedRows == 0 ? null : (double)Sum(x => x.NodesSum) / placedRows,
                ColocatedPairShare = placedPairs == 0 ? null : (double)Sum(x => x.ColocatedPairs) / placedPairs,
                MaxOutput = maxOutput,
            });
        }
        return new RoutingSnapshot
        {
            Experts = _experts,
            TopK = _topK,
            Steps = _current.Steps + (_previous?.Steps ?? 0),
            Source = source,
            Layers = layers,
        };
    }

    private sealed class Counts(int layers, int experts)
    {
        public long Steps;
        public readonly LayerCounts[] Layers = Enumerable.Range(0, layers).Select(_ => new LayerCounts(experts)).ToArray();
    }

    private sealed class LayerCounts(int experts)
    {
        public long Tokens, Transitions, PlacedRows, NodesSum, PlacedPairs, ColocatedPairs;
        public double EntropySum, ChangedShare;
        public bool OutputsSeen;
        /// <summary>Largest |down_proj output| per expert.</summary>
        public readonly double[] MaxOutput = new double[experts];
        public readonly long[] Load = new long[experts];
        /// <summary>[a * E + b] for a &lt; b: rows that chose both a and b.</summary>
        public readonly long[] Pairs = new long[experts * experts];
        /// <summary>[a * E + b]: rows that chose a here and b at the next MoE layer.</summary>
        public readonly long[] Next = new long[experts * experts];
    }
}
