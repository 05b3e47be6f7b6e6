using System.Text;
using System.Text.Json.Nodes;
using MoeCluster.Model.Generation;
using MoeCluster.Node.Tests.Support;
using OpenAI.Chat;

namespace MoeCluster.Node.Tests;

/// <summary>Prefix caching as a client sees it: the second chat with the same long system prompt reports
/// usage.prompt_tokens_details.cached_tokens (official client, streaming and not), produces the greedy text the model
/// core produces without a cache, and /metrics counts the hits.</summary>
[Collection(ServingCollection.Name)]
public sealed class PrefixCacheSpec(ServingFixture f)
{
    /// <summary>A system prompt no other spec sends, so the first request of a test finds nothing cached.</summary>
    static string SystemPrompt(string topic) => $"You are the {topic} assistant. " + string.Concat(Enumerable.Range(0, 24).Select(i => $"Rule {i}: answer about {topic} briefly. "));

    IReadOnlyList<int> Reference(string system, string user, int maxTokens)
    {
        string prompt = $"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n";
        var tokens = f.Model.Tokenizer.Encode(prompt, addSpecialTokens: false);
        return f.Model.GenerateLocally(new GenerationRequest("ref", tokens, maxTokens) { StopTokenIds = f.Model.Tokenizer.EosTokenIds.ToArray() });
    }

    [Fact]
    public async Task Official_client_second_chat_with_the_same_system_prompt_reports_cached_tokens_and_the_same_greedy_text()
    {
        string system = SystemPrompt("tide tables " + Guid.NewGuid().ToString("N")[..6]);
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 6 };
        ChatCompletion first = await f.Chat().CompleteChatAsync([new SystemChatMessage(system), new UserChatMessage("When is high water?")], options);
        ChatCompletion second = await f.Chat().CompleteChatAsync([new SystemChatMessage(system), new UserChatMessage("And low water?")], options);

        Assert.Equal(0, first.Usage.InputTokenDetails.CachedTokenCount);
        int cached = second.Usage.InputTokenDetails.CachedTokenCount;
        Assert.True(cached > 200, $"the ~300-token system prompt should be reused, {cached} tokens were");
        Assert.True(cached < second.Usage.InputTokenCount);
        Assert.Equal(0, cached % TinyServingModel.Batching.PrefixCacheBlockSize);
        Assert.Equal(f.Model.Tokenizer.Decode(Reference(system, "And low water?", 6)), second.Content.Count == 0 ? "" : second.Content[0].Text);

        ChatTokenUsage? usage = null;
        var text = new StringBuilder();
        await foreach (var update in f.Chat().CompleteChatStreamingAsync([new SystemChatMessage(system), new UserChatMessage("And low water?")], options))
        {
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            usage ??= update.Usage;
        }
        Assert.NotNull(usage);
        Assert.True(usage.InputTokenDetails.CachedTokenCount >= cached);
        Assert.Equal(second.Content.Count == 0 ? "" : second.Content[0].Text, text.ToString());
    }

    [Fact]
    public async Task Completions_report_cached_tokens_and_the_metrics_count_queries_and_hits()
    {
        string prompt = SystemPrompt("glaciers " + Guid.NewGuid().ToString("N")[..6]);
        double hitsBefore = await f.Host.Http.MetricAsync("moecluster_prefix_cache_hits_tokens_total");
        double queriesBefore = await f.Host.Http.MetricAsync("moecluster_prefix_cache_queries_tokens_total");
        var body = new { model = f.Host.Options.ModelName, prompt, max_tokens = 4, temperature = 0 };
        var (s1, first) = await f.Host.Http.PostJsonAsync("v1/completions", body);
        var (s2, second) = await f.Host.Http.PostJsonAsync("v1/completions", body);
        Assert.Equal(200, s1);
        Assert.Equal(200, s2);
        Assert.Equal(0, (int)first!["usage"]!["prompt_tokens_details"]!["cached_tokens"]!);
        int cached = (int)second!["usage"]!["prompt_tokens_details"]!["cached_tokens"]!;
        int promptTokens = (int)second["usage"]!["prompt_tokens"]!;
        Assert.True(cached > 0 && cached < promptTokens, $"{cached} of {promptTokens} prompt tokens cached");
        Assert.Equal((string)first["choices"]![0]!["text"]!, (string)second["choices"]![0]!["text"]!);

        // The engine advances the counters after each step, before it hands the step's tokens to the requests.
        Assert.True(await f.Host.Http.MetricAsync("moecluster_prefix_cache_hits_tokens_total") - hitsBefore >= cached);
        Assert.True(await f.Host.Http.MetricAsync("moecluster_prefix_cache_queries_tokens_total") - queriesBefore >= 2 * promptTokens);
    }
}
