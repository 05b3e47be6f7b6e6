using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using MoeCluster.Node.Tests.Support;

namespace MoeCluster.Node.Tests;

/// <summary>
/// Streamed text equals the final text: with a tokenizer whose merges cut emoji, CJK and combining marks into
/// several tokens, every SSE delta of a sampled completion is whole characters (no lone surrogate, no character or
/// fallback run split) and the deltas concatenate to the non-streamed completion for the same seed.
/// </summary>
public sealed class StreamingTextSpec : IAsyncLifetime
{
    static readonly string[] Corpus =
    [
        "数据模型专家 数据 模型 专家路由 数据模型",
        "🙂🚀 👩‍👩‍👧 😀😃 🙂 🚀 emoji 🙂",
        "e\u0301 a\u0308 o\u0302 ü é café naïve e\u0301e\u0301",
        "こんにちは 世界 カタカナ 안녕하세요",
        "plain words and spaces   and\nnew lines",
    ];

    TinyServingModel model = null!;
    ServingHost host = null!;

    public async Task InitializeAsync()
    {
        model = new TinyServingModel(corpus: Corpus);
        host = await ServingHost.StartAsync(model);
    }

    public async Task DisposeAsync()
    {
        await host.DisposeAsync();
        model.Dispose();
    }

    [Fact]
    public async Task Sse_deltas_are_whole_characters_and_concatenate_to_the_non_streamed_completion_for_the_same_seed()
    {
        int nonAscii = 0;
        for (int seed = 1; seed <= 12; seed++)
        {
            var request = new Dictionary<string, object?>
            {
                ["model"] = model.Name, ["prompt"] = "数据 🙂 e\u0301", ["max_tokens"] = 24, ["temperature"] = 1.0, ["seed"] = seed, ["ignore_eos"] = true,
            };
            var (status, whole) = await host.Http.PostJsonAsync("v1/completions", request);
            Assert.Equal(200, status);
            string expected = (string)whole!["choices"]![0]!["text"]!;

            request["stream"] = true;
            using var message = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = JsonContent.Create(request) };
            using var response = await host.Http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
            var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
                .Select(e => e["data: ".Length..]).Where(e => e != "[DONE]").ToList();
            var deltas = events.Select(e => (string?)JsonNode.Parse(e)!["choices"]![0]!["text"] ?? "").ToList();
            foreach (string delta in deltas)
            {
                for (int i = 0; i < delta.Length; i++)
                {
                    Assert.False(char.IsHighSurrogate(delta[i]) && (i + 1 == delta.Length || !char.IsLowSurrogate(delta[i + 1])), $"seed {seed}: a delta ends inside a character: {delta}");
                    Assert.False(char.IsLowSurrogate(delta[i]) && (i == 0 || !char.IsHighSurrogate(delta[i - 1])), $"seed {seed}: a delta starts inside a character: {delta}");
                }
            }
            Assert.Equal(expected, string.Concat(deltas));
            nonAscii += expected.Count(c => c > 0x7F && c != '\uFFFD');
        }
        // The check means something only if the completions held the characters that span several tokens.
        Assert.True(nonAscii > 20, $"only {nonAscii} non-ASCII characters were generated");
    }
}
