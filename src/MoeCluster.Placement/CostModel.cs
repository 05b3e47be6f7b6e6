namespace MoeCluster.Placement;

/// <summary>The sizes of a MoE model that decide what serving it costs (the Model project's config, reduced to numbers
/// so this project stays free of TorchSharp).</summary>
public sealed record ModelShape
{
    /// <summary>Decoder layers.</summary>
    public required int Layers { get; init; }
    /// <summary>Hidden size D.</summary>
    public required int Hidden { get; init; }
    /// <summary>Query heads H.</summary>
    public required int Heads { get; init; }
    /// <summary>Key/value heads G.</summary>
    public required int KvHeads { get; init; }
    /// <summary>Head dimension.</summary>
    public required int HeadDim { get; init; }
    /// <summary>Vocabulary V.</summary>
    public required int Vocab { get; init; }
    /// <summary>Routed experts per MoE layer E.</summary>
    public required int Experts { get; init; }
    /// <summary>Experts per token k.</summary>
    public required int TopK { get; init; }
    /// <summary>Width of one routed expert's SwiGLU.</summary>
    public required int ExpertWidth { get; init; }
    /// <summary>The MoE layers (the others are dense).</summary>
    public required IReadOnlyList<int> MoeLayers { get; init; }
    /// <summary>Width of the shared expert (0 = none).</summary>
    public int SharedExpertWidth { get; init; }
    /// <summary>Width of a dense layer's MLP.</summary>
    public int DenseWidth { get; init; }
    /// <summary>The LM head is the embedding table.</summary>
    public bool TiedEmbeddings { get; init; }
    /// <summary>Bytes per weight and per activation element (4 float32, 2 bfloat16).</summary>
    public int BytesPerElement { get; init; } = 4;

    /// <summary>Weights of one layer's attention projections (q, k, v, o).</summary>
    public long AttentionWeights => (long)Hidden * HeadDim * (2L * Heads + 2L * KvHeads);
    /// <summary>Weights of one routed expert (w1, w3, w2).</summary>
    public long ExpertWeights => 3L * Hidden * ExpertWidth;
    /// <summary>Weights every token reads at a MoE layer besides its experts: router and shared expert.</summary>
    public long MoeFixedWeights => (long)Experts * Hidden + (SharedExpertWidth > 0 ? 3L * Hidden * SharedExpertWidth + Hidden : 0);
    /// <summary>LM head weights read per step (the table itself when tied).</summary>
    public long HeadWeights => (long)Vocab * Hidden;
    /// <summary>KV-cache bytes one token occupies over all layers.</summary>
    public long KvBytesPerToken => 2L * Layers * KvHeads * HeadDim * BytesPerElement;
    /// <summary>Bytes of every routed expert together.</summary>
    public long AllExpertBytes => ExpertWeights * Experts * MoeLayers.Count * BytesPerElement;
    /// <summary>Bytes of everything that is not a routed expert: embeddings, head, attention, routers, shared and dense MLPs.</summary>
    public long GatewayBytes => BytesPerElement * (
        (long)Vocab * Hidden * (TiedEmbeddings ? 1 : 2) + Layers * (AttentionWeights + 2L * Hidden)
        + MoeLayers.Count * MoeFixedWeights + (Layers - MoeLayers.Count) * 3L * Hidden * DenseWidth);
}

/// <summary>How fast this machine runs the operations a step is made of, measured (<c>moecluster plan</c> measures
/// them, the cluster benchmark too): the bandwidth at which a matrix–vector product streams a weight, the rate of a
/// small-batch matrix product, the cost of one small tensor operation (dispatch and allocation, which dominates the
/// many tiny operations of a decode step), and the number of cores.</summary>
/// <param name="WeightStreamBytesPerSecond">Weight bytes per second a [1, D] × [D, I] product reads.</param>
/// <param name="MatmulFlopsPerSecond">FLOP/s of a [32, D] × [D, I] product.</param>
/// <param name="OpSeconds">Seconds of one small elementwise operation.</param>
/// <param name="Cores">Cores of one node.</param>
public sealed record MachineCeilings(double WeightStreamBytesPerSecond, double MatmulFlopsPerSecond, double OpSeconds, int Cores);

/// <summary>What each block of a step costs on the machine, in seconds: the parts <see cref="CostModel"/> adds up.</summary>
public interface IBlockCosts
{
    /// <summary>One layer's attention block (norms, projections, attention over <paramref name="context"/> cached tokens)
    /// for <paramref name="sequences"/> sequences of <paramref name="tokensEach"/> new tokens (1 = decode).</summary>
    double Attention(int sequences, int tokensEach, int context);

    /// <summary>One routed expert on <paramref name="rows"/> rows.</summary>
    double Expert(int rows);

    /// <summary>A MoE layer's router stage: gate, grouping by expert, combine (and the shared expert) for <paramref name="rows"/> rows.</summary>
    double Router(int rows);

    /// <summary>Final norm and LM head on <paramref name="sequences"/> rows.</summary>
    double Head(int sequences);
}

/// <summary>Block costs at the hardware ceilings: bytes at the streaming rate or FLOPs at the matmul rate, whichever is
/// larger, plus a fixed cost per small operation. What a step would cost if every block ran at the measured ceilings —
/// the limit to compare a measured step with.</summary>
public sealed class RooflineCosts(ModelShape m, MachineCeilings h) : IBlockCosts
{
    double Roofline(double bytes, double flops) => Math.Max(bytes / h.WeightStreamBytesPerSecond, flops / h.MatmulFlopsPerSecond);

    /// <inheritdoc/>
    public double Attention(int sequences, int tokensEach, int context)
    {
        int rows = sequences * tokensEach;
        double keys = tokensEach == 1 ? context : context + tokensEach / 2.0;
        double flops = 2.0 * rows * m.AttentionWeights + 4.0 * rows * m.Heads * m.HeadDim * keys;
        double bytes = m.BytesPerElement * (m.AttentionWeights + (double)sequences * keys * 2 * m.KvHeads * m.HeadDim);
        return Roofline(bytes, flops) + CostModel.AttentionOps * h.OpSeconds;
    }

    /// <inheritdoc/>
    public double Expert(int rows) => Roofline(m.BytesPerElement * m.ExpertWeights, 2.0 * rows * m.ExpertWeights) + CostModel.ExpertOps * h.OpSeconds;

    /// <inheritdoc/>
    public double Router(int rows) => Roofline(m.BytesPerElement * m.MoeFixedWeights, 2.0 * rows * m.MoeFixedWeights) + CostModel.RouterOps * h.OpSeconds;

    /// <inheritdoc/>
    public double Head(int sequences) => Roofline(m.BytesPerElement * m.HeadWeights, 2.0 * sequences * m.HeadWeights) + CostModel.StepOps * h.OpSeconds;
}

/// <summary>Block costs measured on the machine at a few sizes (<c>moecluster plan</c> times the model's own blocks
/// with its shapes), linearly interpolated between them and extrapolated beyond from the last two — MoE-Lens profiles
/// its kernels the same way rather than trusting peak rates.</summary>
/// <param name="AttentionPoints">Per new-tokens-per-sequence (1 = decode, or a prompt length): (sequences, seconds) measured.</param>
/// <param name="ExpertPoints">(rows, seconds) of one expert.</param>
/// <param name="RouterPoints">(rows, seconds) of one MoE layer's router stage.</param>
/// <param name="HeadPoints">(sequences, seconds) of the head.</param>
public sealed record MeasuredCosts(
    IReadOnlyDictionary<int, IReadOnlyList<(int Count, double Seconds)>> AttentionPoints,
    IReadOnlyList<(int Count, double Seconds)> ExpertPoints,
    IReadOnlyList<(int Count, double Seconds)> RouterPoints,
    IReadOnlyList<(int Count, double Seconds)> HeadPoints) : IBlockCosts
{
    /// <inheritdoc/>
    public double Attention(int sequences, int tokensEach, int context)
    {
        // The measured prompt length nearest to this one, scaled by tokens (prefill is linear in tokens to first order).
        var nearest = AttentionPoints.Keys.OrderBy(t => Math.Abs(t - tokensEach)).ThenBy(t => t).First();
        return Interpolate(AttentionPoints[nearest], sequences) * (tokensEach == nearest ? 1 : (double)tokensEach / nearest);
    }

    /// <inheritdoc/>
    public double Expert(int rows) => Interpolate(ExpertPoints, rows);

    /// <inheritdoc/>
    public double Router(int rows) => Interpolate(RouterPoints, rows);

    /// <inheritdoc/>
    public double Head(int sequences) => Interpolate(HeadPoints, sequences);

    /// <summary>Piecewise linear through the points (sorted by count); beyond them, the line through the last two.</summary>
    public static double Interpolate(IReadOnlyList<(int Count, double Seconds)> points, double x)
    {
        if (points.Count == 0)
            throw new ArgumentException("No measured point to interpolate.", nameof(points));
        var p = points.OrderBy(q => q.Count).ToList();
        if (p.Count == 1 || x <= p[0].Count)
            return p[0].Seconds * (p.Count == 1 ? Math.Max(1, x) / Math.Max(1, p[0].Count) : 1);
        int i = 1;
        while (i < p.Count - 1 && p[i].Count < x) i++;
        var (x0, y0) = p[i - 1];
        var (x1, y1) = p[i];
        return Math.Max(0, y0 + (y1 - y0) * (x - x0) / (x1 - x0));
    }
}

/// <summary>The cluster to predict: <paramref name="Nodes"/> = 1 is one node with every role; more is one gateway and
/// attention node plus Nodes − 1 expert nodes, as the cluster benchmark and the demo run them.</summary>
/// <param name="Nodes">Nodes in the cluster.</param>
/// <param name="NodeMemoryBytes">Memory of each node available for weights and the KV cache.</param>
/// <param name="NetworkBytesPerSecond">Bandwidth between two nodes.</param>
/// <param name="MessageSeconds">One remote round trip beyond its bytes (serialisation, the transport, scheduling).</param>
/// <param name="LocalHopSeconds">One message between two actors of one process.</param>
/// <param name="SharedMachine">Every node runs on this one machine (loopback): expert nodes do not add compute.</param>
public sealed record ClusterShape(int Nodes, long NodeMemoryBytes, double NetworkBytesPerSecond, double MessageSeconds, double LocalHopSeconds, bool SharedMachine);

/// <summary>Where the time of one step goes, in seconds, and the bytes it sends between nodes.</summary>
public sealed record StepCost(int Tokens, double Attention, double Experts, double Routing, double Network, double Messages, double Head, double NetworkBytes)
{
    /// <summary>Wall time of the step.</summary>
    public double Seconds => Attention + Experts + Routing + Network + Messages + Head;
}

/// <summary>What <see cref="CostModel.Predict"/> expects of one node.</summary>
public sealed record NodeCost(string Node, string Roles, int Experts, long WeightBytes, long KvCacheBytes)
{
    /// <summary>Weights and KV cache.</summary>
    public long Bytes => WeightBytes + KvCacheBytes;
}

/// <summary>The prediction: memory and experts per node, whether it fits, and decode throughput per batch size.</summary>
public sealed record CostPrediction(IReadOnlyList<NodeCost> Nodes, bool Fits, string? Problem, IReadOnlyList<(int Sequences, StepCost Step)> Decode);

/// <summary>
/// A throughput model of serving a MoE model on a cluster in the spirit of MoE-Lens: a step is its blocks — attention
/// per layer, the experts a batch touches, the router stage, the head — each costing what was measured for that block
/// on this machine (<see cref="MeasuredCosts"/>), plus a fixed cost per actor message and the bytes each MoE layer
/// sends between nodes. <see cref="RooflineCosts"/> prices the same blocks at the hardware ceilings instead, which is
/// the limit a measured step is compared with.
/// </summary>
/// <remarks>
/// <para>Per decode step of B sequences at context c, for each layer: attention reads its weights and B·c cached
/// keys and values; a MoE layer touches u = E·(1 − (1 − k/E)^B) experts (uniform routing), each reading its weights
/// once for B·k/u rows; the router and shared expert read theirs. With more than one node every MoE layer is one round
/// trip to the expert nodes: a token's row goes once to each distinct node holding one of its experts,
/// ν = N·(1 − (1 − 1/N)^k) nodes for N expert nodes, and comes back once (top-2 nodes combine). Then the LM head.</para>
/// <para>For the roofline, small operations per layer are counted from the code (attention ≈ 40 in decode,
/// router/grouping/combine ≈ 20, an expert ≈ 6, a step's embedding, head and sampling ≈ 20). Actor hops come from the
/// message flow (one node: 8 local hops per layer; more: 4 local and one remote round trip). On one machine (loopback) all nodes share its memory
/// bandwidth, so expert work adds up; on separate machines the busiest expert node sets the pace.</para>
/// <para>Prefill of T tokens costs the same parts with T rows in the matmul regime.</para>
/// </remarks>
public static class CostModel
{
    /// <summary>Small tensor operations per layer and per step, counted in the decode path (see remarks).</summary>
    public const int AttentionOps = 40, RouterOps = 20, ExpertOps = 6, StepOps = 20;

    /// <summary>Memory and placement on <paramref name="cluster"/> and decode cost for each batch size.</summary>
    /// <param name="model">The model's sizes.</param>
    /// <param name="cluster">Nodes, memory, network.</param>
    /// <param name="costs">What each block costs on the machine (<see cref="MeasuredCosts"/> or <see cref="RooflineCosts"/>).</param>
    /// <param name="batches">Sequences decoded together, one prediction each.</param>
    /// <param name="contextTokens">Context length every sequence is served with (KV cache size and attention reads).</param>
    /// <param name="slots">Sequences the KV cache holds (the largest batch).</param>
    public static CostPrediction Predict(ModelShape model, ClusterShape cluster, IBlockCosts costs, IReadOnlyList<int> batches, int contextTokens, int slots)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(costs);
        ArgumentOutOfRangeException.ThrowIfLessThan(cluster.Nodes, 1);
        long kv = model.KvBytesPerToken * contextTokens * slots;
        long expertBytes = model.ExpertWeights * model.BytesPerElement;
        int totalExperts = model.Experts * model.MoeLayers.Count;
        var nodes = new List<NodeCost>();
        string? problem = null;
        if (cluster.Nodes == 1)
            nodes.Add(new NodeCost("node-0", "gateway, attention, expert", totalExperts, model.GatewayBytes + model.AllExpertBytes, kv));
        else
        {
            nodes.Add(new NodeCost("node-0", "gateway, attention", 0, model.GatewayBytes, kv));
            int expertNodes = cluster.Nodes - 1;
            int slotsPerNode = (int)Math.Min(int.MaxValue, Math.Max(0, cluster.NodeMemoryBytes / Math.Max(1, expertBytes)));
            var experts = model.MoeLayers.SelectMany(l => Enumerable.Range(0, model.Experts).Select(e => new ExpertId(l, e))).ToList();
            var capacities = Enumerable.Range(1, expertNodes).Select(i => new NodeCapacity($"node-{i}", slotsPerNode)).ToList();
            try
            {
                var plan = ExpertPlacement.Place(experts, capacities);
                foreach (var n in capacities)
                {
                    int count = plan.PrimariesOn(n.Address).Count;
                    nodes.Add(new NodeCost(n.Address, "expert", count, count * expertBytes, 0));
                }
            }
            catch (PlacementException e)
            {
                problem = e.Message;
                foreach (var n in capacities) nodes.Add(new NodeCost(n.Address, "expert", slotsPerNode, (long)slotsPerNode * expertBytes, 0));
            }
        }
        var over = nodes.FirstOrDefault(n => n.Bytes > cluster.NodeMemoryBytes);
        if (problem is null && over is not null)
            problem = $"{over.Node} needs {over.Bytes / 1e9:0.00} GB ({over.WeightBytes / 1e9:0.00} GB weights, {over.KvCacheBytes / 1e9:0.00} GB KV cache) of its {cluster.NodeMemoryBytes / 1e9:0.00} GB";
        var decode = batches.Select(b => (b, Step(model, cluster, costs, b, 1, contextTokens / 2))).ToList();
        return new CostPrediction(nodes, problem is null, problem, decode);
    }

    /// <summary>One step over <paramref name="sequences"/> sequences of <paramref name="tokensEach"/> new tokens each
    /// (1 = decode), attending to <paramref name="context"/> cached tokens on average.</summary>
    public static StepCost Step(ModelShape m, ClusterShape cluster, IBlockCosts costs, int sequences, int tokensEach, int context)
    {
        int rows = sequences * tokensEach;
        double attention = m.Layers * costs.Attention(sequences, tokensEach, context);

        int moeLayers = m.MoeLayers.Count, expertNodes = Math.Max(1, cluster.Nodes - 1);
        double touched = m.Experts * (1 - Math.Pow(1 - (double)m.TopK / m.Experts, rows));
        int rowsPerExpert = (int)Math.Ceiling(rows * m.TopK / Math.Max(1e-9, touched));
        double oneExpert = costs.Expert(rowsPerExpert);
        // On one machine every expert's weights stream through the same memory; on separate machines the busiest node
        // sets the pace (touched experts spread evenly over the expert nodes).
        double expertsPerLayer = cluster.SharedMachine || cluster.Nodes == 1 ? touched * oneExpert : Math.Ceiling(touched / expertNodes) * oneExpert;
        double experts = moeLayers * expertsPerLayer;
        // Dense layers (Qwen2-MoE's mlp_only_layers) cost about one expert of their width on all rows.
        double routing = moeLayers * costs.Router(rows) + (m.Layers - moeLayers) * costs.Expert(rows) * m.DenseWidth / Math.Max(1, m.ExpertWidth);

        double network = 0, bytes = 0, messages;
        if (cluster.Nodes == 1) messages = m.Layers * 8 * cluster.LocalHopSeconds;
        else
        {
            double nodesPerToken = expertNodes * (1 - Math.Pow(1 - 1.0 / expertNodes, m.TopK));
            double rowsBack = m.TopK <= 2 ? nodesPerToken : m.TopK;
            bytes = moeLayers * rows * (nodesPerToken + rowsBack) * m.Hidden * (double)m.BytesPerElement;
            network = bytes / cluster.NetworkBytesPerSecond;
            messages = m.Layers * 4 * cluster.LocalHopSeconds + moeLayers * cluster.MessageSeconds;
        }
        double head = costs.Head(sequences);
        return new StepCost(rows, attention, experts, routing, network, messages, head, bytes);
    }

    /// <summary>Seconds to serve <paramref name="sequences"/> requests together: one prefill step of their prompts, then
    /// one decode step per further token (the first token comes from the prefill).</summary>
    public static double RunSeconds(ModelShape model, ClusterShape cluster, IBlockCosts costs, int sequences, int promptTokens, int newTokens)
    {
        double seconds = Step(model, cluster, costs, sequences, promptTokens, 0).Seconds;
        for (int t = 1; t < newTokens; t++) seconds += Step(model, cluster, costs, sequences, 1, promptTokens + t).Seconds;
        return seconds;
    }
}
