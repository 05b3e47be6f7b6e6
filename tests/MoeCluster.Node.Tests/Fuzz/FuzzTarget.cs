namespace MoeCluster.Node.Tests.Fuzz;

/// <summary>One endpoint the fuzzer attacks. A JSON target gives a valid body and the fields to replace with every JSON
/// type; a target with another body (JSONL, multipart) builds its own requests in <see cref="Custom"/>, from the same
/// random source and with the mutations of <see cref="JsonMutations"/> at hand.</summary>
public sealed record FuzzTarget(string Name, HttpMethod Method, string Path)
{
    /// <summary>A body the endpoint accepts (200), with the model name filled in.</summary>
    public string? ValidJson { get; init; }

    /// <summary>Field paths (top level, or nested as <c>messages[0].role</c>) replaced one at a time with each sample value.</summary>
    public IReadOnlyList<string> Fields { get; init; } = [];

    /// <summary>Builds one request of a non-JSON body kind; called <see cref="CustomCases"/> times.</summary>
    public Func<Random, HttpRequestMessage>? Custom { get; init; }

    public int CustomCases { get; init; }
}
