using System.ClientModel;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MoeCluster.Model.Generation;
using MoeCluster.Node.Tests.Support;

namespace MoeCluster.Node.Tests;

/// <summary>n &gt; 1 and best_of: each choice its own sequence and seeded generator (seed + index, as vLLM), indexed in
/// streaming and non-streaming answers, the prompt prefilled once and copied to the other choices, usage counting the
/// prompt once; best_of returns the choices with the highest cumulative log-probability. Chat through the official
/// OpenAI .NET client (its protocol call: the typed model reads only the first choice), the rest over raw HTTP.</summary>
[Collection(ServingCollection.Name)]
public sealed class ChoicesSpec(ServingFixture f)
{
    const string Text = "Mixture of experts routes every token to its top experts. Hello world! Hello there, world. How are you today?";

    /// <summary>The model core's tokens and cumulative log-probability for one seeded choice.</summary>
    (IReadOnlyList<int> Tokens, double Cumulative) Reference(IReadOnlyList<int> prompt, int maxTokens, long seed, IReadOnlyList<int> stop)
    {
        var request = new GenerationRequest("ref", prompt, maxTokens) { Sampling = new SamplingOptions { Temperature = 1.0, Seed = seed }, StopTokenIds = stop, Logprobs = 0 };
        using var engine = new LocalEngine(f.Model.Model, TinyServingModel.Batching with { PrefixCaching = false });
        double cumulative = 0;
        var finished = engine.Run([request], e => { if (e is TokenGenerated { Logprob: { } lp }) cumulative += lp.Logprob; });
        return (finished["ref"].Generated, cumulative);
    }

    IReadOnlyList<int> ChatPrompt(string user) => f.Model.Tokenizer.Encode(
        $"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n", addSpecialTokens: false);

    [Fact]
    public async Task Official_client_chat_with_n_3_returns_three_indexed_choices_each_the_model_core_output_for_seed_plus_index()
    {
        string user = "Tell me about experts " + Guid.NewGuid().ToString("N")[..6];
        var body = new { model = f.Model.Name, messages = new[] { new { role = "user", content = user } }, n = 3, seed = 40, temperature = 1.0, max_tokens = 8 };
        double hitsBefore = await f.Host.Http.MetricAsync("moecluster_prefix_cache_hits_tokens_total");
        ClientResult result = await f.Chat().CompleteChatAsync(BinaryContent.Create(BinaryData.FromObjectAsJson(body)));
        var json = JsonNode.Parse(result.GetRawResponse().Content.ToString())!;

        var choices = json["choices"]!.AsArray();
        Assert.Equal([0, 1, 2], choices.Select(c => (int)c!["index"]!));
        var prompt = ChatPrompt(user);
        var eos = f.Model.Tokenizer.EosTokenIds.ToArray();
        for (int j = 0; j < 3; j++)
            Assert.Equal(f.Model.Tokenizer.Decode(Reference(prompt, 8, 40 + j, eos).Tokens), (string)choices[j]!["message"]!["content"]!);
        Assert.Equal(prompt.Count, (int)json["usage"]!["prompt_tokens"]!);          // the prompt counts once
        // The prompt was prefilled once: the two other choices copied its full blocks.
        int blocks = (prompt.Count - 1) / TinyServingModel.Batching.PrefixCacheBlockSize * TinyServingModel.Batching.PrefixCacheBlockSize;
        Assert.True(blocks > 0);
        Assert.True(await f.Host.Http.MetricAsync("moecluster_prefix_cache_hits_tokens_total") - hitsBefore >= 2 * blocks);

        // The typed client reads the first choice.
        var typed = new OpenAI.Chat.ChatCompletionOptions { Temperature = 1.0f, MaxOutputTokenCount = 8 };
#pragma warning disable OPENAI001
        typed.Seed = 40;
#pragma warning restore OPENAI001
        OpenAI.Chat.ChatCompletion first = await f.Chat().CompleteChatAsync([new OpenAI.Chat.UserChatMessage(user)], typed);
        Assert.Equal((string)choices[0]!["message"]!["content"]!, first.Content.Count == 0 ? "" : first.Content[0].Text);
    }

    [Fact]
    public async Task Streaming_chat_with_n_2_tags_every_chunk_with_its_choice_and_each_choice_streams_its_own_text()
    {
        string user = "Stream two answers " + Guid.NewGuid().ToString("N")[..6];
        var request = new { model = f.Model.Name, messages = new[] { new { role = "user", content = user } }, n = 2, seed = 5, temperature = 1.0, max_tokens = 8, stream = true };
        using var message = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = JsonContent.Create(request) };
        using var response = await f.Host.Http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).ToList();
        Assert.Equal("[DONE]", events[^1]);
        var text = new[] { new StringBuilder(), new StringBuilder() };
        var finished = new bool[2];
        foreach (var e in events[..^1])
        {
            var choice = Assert.Single(JsonNode.Parse(e)!["choices"]!.AsArray())!;
            int index = (int)choice["index"]!;
            text[index].Append((string?)choice["delta"]!["content"] ?? "");
            if (choice["finish_reason"] is JsonValue) finished[index] = true;
        }
        Assert.All(finished, Assert.True);
        var prompt = ChatPrompt(user);
        var eos = f.Model.Tokenizer.EosTokenIds.ToArray();
        for (int j = 0; j < 2; j++) Assert.Equal(f.Model.Tokenizer.Decode(Reference(prompt, 8, 5 + j, eos).Tokens), text[j].ToString());
    }

    [Fact]
    public async Task Completions_best_of_returns_the_choices_with_the_highest_cumulative_logprob_and_n_indexes_prompt_major()
    {
        var (status, body) = await f.Host.Http.PostJsonAsync("v1/completions",
            new { model = f.Model.Name, prompt = Text, best_of = 4, n = 2, seed = 11, temperature = 1.0, max_tokens = 6, ignore_eos = true });
        Assert.Equal(200, status);
        var prompt = f.Model.Tokenizer.Encode(Text);
        var candidates = Enumerable.Range(0, 4).Select(j => Reference(prompt, 6, 11 + j, [])).ToArray();
        var best = candidates.OrderByDescending(c => c.Cumulative).Take(2).Select(c => f.Model.Tokenizer.Decode(c.Tokens)).ToArray();
        var choices = body!["choices"]!.AsArray();
        Assert.Equal([0, 1], choices.Select(c => (int)c!["index"]!));
        Assert.Equal(best, choices.Select(c => (string)c!["text"]!));
        Assert.Null(choices[0]!["logprobs"]);                                       // not asked for, though best_of used them
        Assert.Equal(12, (int)body["usage"]!["completion_tokens"]!);

        (status, body) = await f.Host.Http.PostJsonAsync("v1/completions",
            new { model = f.Model.Name, prompt = new[] { Text, "def main():" }, n = 2, seed = 3, temperature = 1.0, max_tokens = 4, ignore_eos = true });
        Assert.Equal(200, status);
        var byIndex = body!["choices"]!.AsArray().ToDictionary(c => (int)c!["index"]!, c => (string)c!["text"]!);
        Assert.Equal([0, 1, 2, 3], byIndex.Keys.Order());
        var second = f.Model.Tokenizer.Encode("def main():");
        Assert.Equal(f.Model.Tokenizer.Decode(Reference(second, 4, 4, []).Tokens), byIndex[3]);   // prompt 1, choice 1: seed + 1
        Assert.Equal(prompt.Count + second.Count, (int)body["usage"]!["prompt_tokens"]!);
    }
}
