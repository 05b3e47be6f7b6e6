using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MoeCluster.Placement;

/// <summary>One MoE layer's routing over a window (see <see cref="RoutingStatistics"/>).</summary>
public sealed record LayerRoutingStatistics
{
    /// <summary>Decoder layer index.</summary>
    public required int Layer { get; init; }

    /// <summary>Rows (tokens) routed.</summary>
    public required long Tokens { get; init; }

    /// <summary>Mean entropy in nats of a token's gate distribution over all experts (softmax, before top-k).</summary>
    public required double MeanEntropy { get; init; }

    /// <summary>Tokens per expert (each token counts once for each of its k experts): the layer's load histogram.</summary>
    public required IReadOnlyList<long> Load { get; init; }

    /// <summary>[a][b]: tokens that chose both a and b at this layer; symmetric, zero diagonal.</summary>
    public required IReadOnlyList<IReadOnlyList<long>> Coactivation { get; init; }

    /// <summary>The next MoE layer, or null for the last one.</summary>
    public int? NextLayer { get; init; }

    /// <summary>[a][b]: tokens that chose a here and b at <see cref="NextLayer"/>; null for the last MoE layer.</summary>
    public IReadOnlyList<IReadOnlyList<long>>? NextLayerCoactivation { get; init; }

    /// <summary>Mean share of a token's k experts that differ from the previous token of its sequence (0 = the same
    /// experts all along, 1 = all different every token).</summary>
    public required double Fluctuation { get; init; }

    /// <summary>Consecutive-token pairs behind <see cref="Fluctuation"/>.</summary>
    public required long Transitions { get; init; }

    /// <summary>Mean number of distinct nodes holding a token's k experts, when placement was known; else null.</summary>
    public double? NodesPerToken { get; init; }

    /// <summary>Share of co-activated pairs whose two experts were on one node, when placement was known; else null.</summary>
    public double? ColocatedPairShare { get; init; }

    /// <summary>Largest |activation| of each expert's output (down_proj) seen, when recorded (offline profiles); else null.</summary>
    public IReadOnlyList<double>? MaxOutput { get; init; }

    /// <summary>Entropy ÷ ln E: 1 when the gate is uniform over the E experts, 0 when it is certain.</summary>
    public double NormalisedEntropy => Load.Count <= 1 ? 0 : MeanEntropy / Math.Log(Load.Count);

    /// <summary>Mean ÷ max tokens per expert (1 = perfectly even), as vLLM's EPLB logs it.</summary>
    public double Balancedness => Load.Count == 0 || Load.Max() == 0 ? 1.0 : Load.Average() / Load.Max();

    /// <summary>Co-activation count of experts <paramref name="a"/> and <paramref name="b"/> (0 outside the matrix).</summary>
    public long PairCount(int a, int b) =>
        a >= 0 && b >= 0 && a < Coactivation.Count && b < Coactivation.Count && a != b ? Coactivation[a][b] : 0;

    /// <summary>The <paramref name="count"/> most co-activated pairs, most first (ties by index).</summary>
    public IReadOnlyList<(int A, int B, long Tokens)> TopPairs(int count)
    {
        var pairs = new List<(int, int, long)>();
        for (var a = 0; a < Coactivation.Count; a++)
            for (var b = a + 1; b < Coactivation.Count; b++)
                if (Coactivation[a][b] > 0)
                    pairs.Add((a, b, Coactivation[a][b]));
        return pairs.OrderByDescending(p => p.Item3).ThenBy(p => p.Item1).ThenBy(p => p.Item2).Take(count).ToList();
    }
}

/// <summary>
/// Routing statistics of every MoE layer over a window, in one JSON format shared by <c>moecluster routing-stats</c>
/// (offline, from a text file), <c>GET /v1/cluster/routing</c> (a gateway's live window) and the co-activation
/// placement's <c>--routing-profile</c> input.
/// </summary>
public sealed record RoutingSnapshot
{
    /// <summary>Experts per MoE layer (E).</summary>
    public required int Experts { get; init; }

    /// <summary>Experts per token (k).</summary>
    public required int TopK { get; init; }

    /// <summary>Steps in the window.</summary>
    public required long Steps { get; init; }

    /// <summary>Where the numbers come from (a data file, a gateway), for people reading it.</summary>
    public string? Source { get; init; }

    /// <summary>One entry per MoE layer, in layer order.</summary>
    public required IReadOnlyList<LayerRoutingStatistics> Layers { get; init; }

    /// <summary>Rows routed by the first MoE layer (= tokens seen).</summary>
    public long Tokens => Layers.Count == 0 ? 0 : Layers[0].Tokens;

    /// <summary>The statistics of decoder layer <paramref name="layer"/>, or null when it is not a MoE layer here.</summary>
    public LayerRoutingStatistics? Layer(int layer) => Layers.FirstOrDefault(l => l.Layer == layer);

    /// <summary>Indented JSON with snake_case names.</summary>
    public string ToJson()
    {
        var layers = new JsonArray();
        foreach (var l in Layers)
        {
            var o = new JsonObject
            {
                ["layer"] = l.Layer,
                ["tokens"] = l.Tokens,
                ["entropy"] = l.MeanEntropy,
                ["normalised_entropy"] = l.NormalisedEntropy,
                ["balancedness"] = l.Balancedness,
                ["fluctuation"] = l.Fluctuation,
                ["transitions"] = l.Transitions,
                ["load"] = new JsonArray(l.Load.Select(x => (JsonNode)x).ToArray()),
                ["coactivation"] = Matrix(l.Coactivation),
            };
            if (l.NextLayer is { } next)
            {
                o["next_layer"] = next;
                o["next_layer_coactivation"] = Matrix(l.NextLayerCoactivation!);
            }
            if (l.NodesPerToken is { } n)
                o["nodes_per_token"] = n;
            if (l.ColocatedPairShare is { } s)
                o["colocated_pair_share"] = s;
            if (l.MaxOutput is { } m)
                o["max_output"] = new JsonArray(m.Select(x => (JsonNode)x).ToArray());
            layers.Add(o);
        }
        var root = new JsonObject { ["experts"] = Experts, ["top_k"] = TopK, ["steps"] = Steps, ["tokens"] = Tokens };
        if (Source is not null)
            root["source"] = Source;
        root["layers"] = layers;
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    private static JsonArray Matrix(IReadOnlyList<IReadOnlyList<long>> m) =>
        new(m.Select(row => (JsonNode)new JsonArray(row.Select(x => (JsonNode)x).ToArray())).ToArray());

    /// <summary>Reads what <see cref="ToJson"/> writes.</summary>
    /// <exception cref="FormatException">The text is not such a document; the message names the field.</exception>
    public static RoutingSnapshot Parse(string json)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json); }
        catch (JsonException e) { throw new FormatException($"routing statistics are not valid JSON: {e.Message}", e); }
        if (root is not JsonObject o)
            throw new FormatException("routing statistics must be a JSON object with 'experts', 'top_k', 'steps' and 'layers'.");
        var experts = Int(o, "experts", "");
        if (experts < 1)
            throw new FormatException($"'experts' must be at least 1, got {experts}.");
        var topK = Int(o, "top_k", "");
        if (topK < 1 || topK > experts)
            throw new FormatException($"'top_k' must be in [1, {experts}], got {topK}.");
        if (o["layers"] is not JsonArray array)
            throw new FormatException("'layers' is missing or not an array.");
        var layers = new List<LayerRoutingStatistics>();
        for (var i = 0; i < array.Count; i++)
        {
            var at = string.Create(CultureInfo.InvariantCulture, $"layers[{i}].");
            if (array[i] is not JsonObject l)
                throw new FormatException($"'{at.TrimEnd('.')}' is not an object.");
            var next = l["next_layer"] is null ? (int?)null : Int(l, "next_layer", at);
            layers.Add(new LayerRoutingStatistics
            {
                Layer = Int(l, "layer", at),
                Tokens = Long(l, "tokens", at),
                MeanEntropy = Double(l, "entropy", at),
                Fluctuation = Double(l, "fluctuation", at),
                Transitions = Long(l, "transitions", at),
                Load = Vector(l, "load", at, experts),
                Coactivation = Square(l, "coactivation", at, experts),
                NextLayer = next,
                NextLayerCoactivation = next is null ? null : Square(l, "next_layer_coactivation", at, experts),
                NodesPerToken = l["nodes_per_token"] is null ? null : Double(l, "nodes_per_token", at),
                ColocatedPairShare = l["colocated_pair_share"] is null ? null : Double(l, "colocated_pair_share", at),
                MaxOutput = l["max_output"] is null ? null : Reals(l["max_output"]!, at + "max_output", experts),
            });
        }
        if (layers.Select(l => l.Layer).Distinct().Count() != layers.Count)
            throw new FormatException("'layers' lists a layer twice.");
        return new RoutingSnapshot
        {
            Experts = experts,
            TopK = topK,
            Steps = Long(o, "steps", ""),
            Source = o["source"]?.GetValue<string>(),
            Layers = layers.OrderBy(l => l.Layer).ToList(),
        };
    }

    private static JsonNode Field(JsonObject o, string name, string at) =>
        o[name] ?? throw new FormatException($"'{at}{name}' is missing.");

    private static T Value<T>(JsonNode node, string path)
    {
        try { return node.GetValue<T>(); }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new FormatException($"'{path}' must be a {(typeof(T) == typeof(double) ? "number" : "whole number")}.", e);
        }
    }

    private static int Int(JsonObject o, string name, string at) => Value<int>(Field(o, name, at), at + name);

    private static long Long(JsonObject o, string name, string at)
    {
        var v = Value<long>(Field(o, name, at), at + name);
        return v >= 0 ? v : throw new FormatException($"'{at}{name}' must not be negative, got {v}.");
    }

    private static double Double(JsonObject o, string name, string at)
    {
        var v = Value<double>(Field(o, name, at), at + name);
        return double.IsFinite(v) && v >= 0 ? v : throw new FormatException($"'{at}{name}' must be a finite number ≥ 0, got {v}.");
    }

    private static long[] Vector(JsonObject o, string name, string at, int length) => Counts(Field(o, name, at), at + name, length);

    private static long[] Counts(JsonNode node, string path, int length) => Numbers<long>(node, path, length, "counts", v => v >= 0);

    private static double[] Reals(JsonNode node, string path, int length) => Numbers<double>(node, path, length, "numbers", v => double.IsFinite(v) && v >= 0);

    /// <summary>An array of <paramref name="length"/> values (one per expert), each accepted by <paramref name="valid"/>.</summary>
    private static T[] Numbers<T>(JsonNode node, string path, int length, string what, Func<T, bool> valid)
    {
        if (node is not JsonArray a || a.Count != length)
            throw new FormatException($"'{path}' must be an array of {length} {what} (one per expert).");
        var v = new T[length];
        for (var i = 0; i < length; i++)
        {
            var item = string.Create(CultureInfo.InvariantCulture, $"{path}[{i}]");
            v[i] = Value<T>(a[i] ?? throw new FormatException($"'{item}' is null."), item);
            if (!valid(v[i]))
                throw new FormatException($"'{item}' must be ≥ 0, got {v[i]}.");
        }
        return v;
    }

    private static long[][] Square(JsonObject o, string name, string at, int size)
    {
        if (Field(o, name, at) is not JsonArray a || a.Count != size)
            throw new FormatException($"'{at}{name}' must be a {size}×{size} matrix (one row per expert).");
        var rows = new long[size][];
        for (var i = 0; i < size; i++)
        {
            var item = string.Create(CultureInfo.InvariantCulture, $"{at}{name}[{i}]");
            rows[i] = Counts(a[i] ?? throw new FormatException($"'{item}' is null."), item, size);
        }
        return rows;
    }
}
