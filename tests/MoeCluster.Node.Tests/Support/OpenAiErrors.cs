using System.Text.Json.Nodes;

namespace MoeCluster.Node.Tests.Support;

public static class OpenAiErrors
{
    /// <summary>The body is <c>{"error":{"message","type","param","code"}}</c> with a non-empty message and type, and
    /// (when given) the expected param.</summary>
    public static void AssertError(JsonNode? json, string? param)
    {
        var error = json?["error"] ?? throw new Xunit.Sdk.XunitException($"no OpenAI error object in {json}");
        Assert.False(string.IsNullOrWhiteSpace((string?)error["message"]), $"empty message in {json}");
        Assert.False(string.IsNullOrWhiteSpace((string?)error["type"]), $"empty type in {json}");
        Assert.True(error.AsObject().ContainsKey("param") && error.AsObject().ContainsKey("code"), $"param/code missing in {json}");
        if (param is not null) Assert.Equal(param, (string?)error["param"]);
    }
}
