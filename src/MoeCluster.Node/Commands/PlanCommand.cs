using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MoeCluster.Model;
using MoeCluster.Placement;
using static TorchSharp.torch;

namespace MoeCluster.Node.Commands;

/// <summary>`moecluster plan`: predicted per-node memory, expert placement and decode throughput of a model on a
/// cluster, from the model's FLOPs and bytes per token and rates measured on this machine (<see cref="CostModel"/>).</summary>
public static class PlanCommand
{
    static readonly Option<string?> Model = new("--model") { Description = "checkpoint directory (default: the built-in model)" };
    static readonly Option<int> Nodes = new("--nodes") { Description = "1 = one node with every role; N > 1 = a gateway/attention node and N − 1 expert nodes", DefaultValueFactory = _ => 3 };
    static readonly Option<double> NodeMemory = new("--node-memory") { Description = "GB of memory per node for weights and KV cache", DefaultValueFactory = _ => 16 };
    static readonly Option<double?> Bandwidth = new("--bandwidth") { Description = "GB/s between nodes (default: loopback, measured)" };
    static readonly Option<string> DType = new("--dtype") { DefaultValueFactory = _ => "float32" };
    static readonly Option<string> Batches = new("--batch") { Description = "sequences decoded together, comma separated", DefaultValueFactory = _ => "1,8,32" };
    static readonly Option<int> Context = new("--context-length") { DefaultValueFactory = _ => 512 };
    static readonly Option<bool> Loopback = new("--loopback") { Description = "all nodes share this machine (default when --bandwidth is not given)" };
    static readonly Option<double?> MessageMs = new("--message-ms") { Description = "one remote round trip in ms (default: measured on loopback)" };
    static readonly Option<bool> Json = new("--json") { Description = "print the prediction as JSON" };

    public static Command Create()
    {
        var c = new Command("plan", "Predict per-node memory, expert placement and decode throughput of a model on a cluster.")
        {
            Model, Nodes, NodeMemory, Bandwidth, DType, Batches, Context, Loopback, MessageMs, Json,
        };
        c.SetAction(p =>
        {
            try { return Run(p); }
            catch (Exception e) when (e is ArgumentException or IOException or ModelConfigException or FormatException)
            {
                Console.Error.WriteLine($"moecluster plan: {e.Message}");
                return 2;
            }
        });
        return c;
    }

    /// <summary>The cost model's view of a checkpoint's config.</summary>
    public static ModelShape ShapeOf(ModelConfig c, string dtype) => new()
    {
        Layers = c.NumLayers, Hidden = c.HiddenSize, Heads = c.NumHeads, KvHeads = c.NumKvHeads, HeadDim = c.HeadDim, Vocab = c.VocabSize,
        Experts = c.NumExperts, TopK = c.TopK, ExpertWidth = c.ExpertIntermediateSize, MoeLayers = c.MoeLayers.ToList(),
        SharedExpertWidth = c.HasSharedExpert ? c.SharedExpertIntermediateSize : 0, DenseWidth = c.IntermediateSize,
        TiedEmbeddings = c.TieWordEmbeddings, BytesPerElement = dtype is "bfloat16" or "float16" ? 2 : 4,
    };

    static int Run(ParseResult p)
    {
        var dir = p.GetValue(Model) ?? DefaultModel.Directory();
        var config = ModelConfig.Load(dir);
        int nodes = p.GetValue(Nodes);
        if (nodes < 1) throw new ArgumentException("--nodes must be at least 1");
        if (p.GetValue(NodeMemory) <= 0) throw new ArgumentException("--node-memory must be a positive number of GB");
        if (p.GetValue(Bandwidth) is <= 0) throw new ArgumentException("--bandwidth must be a positive number of GB/s");
        var batches = p.GetValue(Batches)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(b => int.TryParse(b, out var v) && v > 0 ? v : throw new ArgumentException($"--batch: '{b}' is not a positive integer")).ToArray();
        var dtype = p.GetValue(DType)!;
        var scalar = MoeCluster.Model.Layers.ModuleOptions.Parse(dtype, "cpu").DType;
        var shape = ShapeOf(config, dtype);

        Console.Error.WriteLine("measuring this machine (the model's blocks at its shapes, streaming and matmul rates, actor messages) …");
        var m = MachineCalibration.Measure(config.HiddenSize, config.ExpertIntermediateSize, shape.AllExpertBytes, scalar);
        var blocks = BlockCalibration.Measure(config, scalar, batches, [], p.GetValue(Context) / 2);
        bool loopback = p.GetValue(Loopback) || p.GetValue(Bandwidth) is null;
        var cluster = new ClusterShape(nodes, (long)(p.GetValue(NodeMemory) * 1e9), (p.GetValue(Bandwidth) ?? m.LoopbackBytesPerSecond / 1e9) * 1e9,
            (p.GetValue(MessageMs) ?? m.MessageSeconds * 1e3) / 1e3, m.LocalHopSeconds, loopback);
        var prediction = CostModel.Predict(shape, cluster, blocks, batches, p.GetValue(Context), batches.Max());
        var roofline = CostModel.Predict(shape, cluster, new RooflineCosts(shape, m.Machine), batches, p.GetValue(Context), batches.Max());
        if (p.GetValue(Json)) Console.WriteLine(JsonSerializer.Serialize(new
        {
            model = dir, nodes, loopback, fits = prediction.Fits, problem = prediction.Problem,
            measured = new { stream_gbs = m.Machine.WeightStreamBytesPerSecond / 1e9, matmul_gflops = m.Machine.MatmulFlopsPerSecond / 1e9, op_us = m.Machine.OpSeconds * 1e6, local_hop_us = m.LocalHopSeconds * 1e6, message_ms = cluster.MessageSeconds * 1e3, bandwidth_gbs = cluster.NetworkBytesPerSecond / 1e9 },
            per_node = prediction.Nodes.Select(n => new { node = n.Node, roles = n.Roles, experts = n.Experts, weight_bytes = n.WeightBytes, kv_cache_bytes = n.KvCacheBytes }),
            decode = prediction.Decode.Zip(roofline.Decode, (d, r) => new { sequences = d.Sequences, tokens_per_second = d.Sequences / d.Step.Seconds, at_ceilings_tokens_per_second = r.Sequences / r.Step.Seconds, step_ms = d.Step.Seconds * 1e3, bytes_between_nodes_per_token = d.Step.NetworkBytes / d.Step.Tokens }),
        }, new JsonSerializerOptions { WriteIndented = true }));
        else Print(dir, cluster, m, prediction, roofline);
        return prediction.Fits ? 0 : 3;
    }

    static void Print(string dir, ClusterShape cluster, MachineCalibration.Result m, CostPrediction prediction, CostPrediction roofline)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"{dir}: {cluster.Nodes} node(s){(cluster.SharedMachine ? " sharing this machine" : "")}, {cluster.NodeMemoryBytes / 1e9:0.##} GB each, {cluster.NetworkBytesPerSecond / 1e9:0.##} GB/s between nodes"));
        Console.WriteLine(string.Create(inv, $"measured: weights stream at {m.Machine.WeightStreamBytesPerSecond / 1e9:0.0} GB/s (matrix–vector), {m.Machine.MatmulFlopsPerSecond / 1e9:0.0} GFLOP/s (32 rows), {m.Machine.OpSeconds * 1e6:0.0} µs per small op, {m.LocalHopSeconds * 1e6:0} µs per local actor hop, {cluster.MessageSeconds * 1e3:0.00} ms per remote round trip"));
        Console.WriteLine();
        Console.WriteLine("node     roles                        experts   weights     KV cache");
        foreach (var n in prediction.Nodes)
            Console.WriteLine(string.Create(inv, $"{n.Node,-8} {n.Roles,-28} {n.Experts,7} {n.WeightBytes / 1e6,8:0.0} MB {n.KvCacheBytes / 1e6,8:0.0} MB"));
        Console.WriteLine(prediction.Fits ? "fits" : $"does not fit: {prediction.Problem}");
        Console.WriteLine();
        Console.WriteLine("sequences  tokens/s  at ceilings  ms/step  attention  experts  router  network  messages  head   (ms)   bytes between nodes per token");
        foreach (var ((b, s), (_, r)) in prediction.Decode.Zip(roofline.Decode))
            Console.WriteLine(string.Create(inv, $"{b,9} {b / s.Seconds,9:0.0} {b / r.Seconds,12:0.0} {s.Seconds * 1e3,8:0.00} {s.Attention * 1e3,10:0.00} {s.Experts * 1e3,8:0.00} {s.Routing * 1e3,7:0.00} {s.Network * 1e3,8:0.00} {s.Messages * 1e3,9:0.00} {s.Head * 1e3,5:0.00}          {s.NetworkBytes / s.Tokens,8:0}"));
        Console.WriteLine("(tokens/s from this machine's measured block times; \"at ceilings\": the same steps at the measured streaming and matmul rates)");
    }
}
