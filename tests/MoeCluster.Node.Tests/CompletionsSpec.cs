using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using MoeCluster.Model.Generation;
using MoeCluster.Node.Tests.Support;

namespace MoeCluster.Node.Tests;

[Collection(ServingCollection.Name)]
public sealed class CompletionsSpec(ServingFixture f)
{
    const string Prompt = "The quick brown fox";

    IReadOnlyList<int> GreedyReference(IReadOnlyList<int> prompt, int maxTokens, bool stopAtEos = true) =>
        f.Model.GenerateLocally(new GenerationRequest("ref", prompt, maxTokens)
        {
            StopTokenIds = stopAtEos ? f.Model.Tokenizer.EosTokenIds.ToArray() : [],
        });

    [Fact]
    public async Task Greedy_completion_over_http_equals_the_model_core_output_for_the_same_prompt()
    {
        var (status, body) = await f.Host.Http.PostJsonAsync("v1/completions",
            new { model = f.Model.Name, prompt = Prompt, max_tokens = 12, temperature = 0 });
        Assert.Equal(200, status);
        var expected = GreedyReference(f.Model.Tokenizer.Encode(Prompt), 12);
        Assert.Equal(f.Model.Tokenizer.Decode(expected), (string)body!["choices"]![0]!["text"]!);
        Assert.Equal("text_completion", (string)body["object"]!);
        Assert.Equal(f.Model.Tokenizer.Encode(Prompt).Count, (int)body["usage"]!["prompt_tokens"]!);
        Assert.Equal(expected.Count, (int)body["usage"]!["completion_tokens"]!);
        Assert.Equal(expected.Count == 12 ? "length" : "stop", (string)body["choices"]![0]!["finish_reason"]!);
    }

    [Fact]
    public async Task Streamed_completion_chunks_concatenate_to_the_non_streamed_text_and_end_with_done()
    {
        var request = new { model = f.Model.Name, prompt = Prompt, max_tokens = 10, temperature = 0, ignore_eos = true };
        var (_, whole) = await f.Host.Http.PostJsonAsync("v1/completions", request);
        var events = await Sse(new { model = f.Model.Name, prompt = Prompt, max_tokens = 10, temperature = 0, ignore_eos = true, stream = true, stream_options = new { include_usage = true } });

        Assert.Equal("[DONE]", events[^1]);
        var chunks = events.SkipLast(1).Select(e => JsonNode.Parse(e)!).ToList();
        var text = string.Concat(chunks.Where(c => c["choices"]!.AsArray().Count > 0).Select(c => (string)c["choices"]![0]!["text"]!));
        Assert.Equal((string)whole!["choices"]![0]!["text"]!, text);
        Assert.Equal("length", (string)chunks.Last(c => c["choices"]!.AsArray().Count > 0)["choices"]![0]!["finish_reason"]!);
        Assert.Equal(10, (int)chunks[^1]["usage"]!["completion_tokens"]!);
    }

    [Fact]
    public async Task A_stop_string_truncates_the_text_before_it_and_reports_finish_reason_stop()
    {
        var (_, free) = await f.Host.Http.PostJsonAsync("v1/completions",
            new { model = f.Model.Name, prompt = Prompt, max_tokens = 16, temperature = 0, ignore_eos = true });
        string full = (string)free!["choices"]![0]!["text"]!;
        Assert.True(full.Length >= 4, $"the reference text '{full}' is too short to cut");
        // A stop string taken from the middle of the text the model writes anyway.
        string stop = full.Substring(full.Length / 2, 2);
        int cut = full.IndexOf(stop, StringComparison.Ordinal);

        var (status, body) = await f.Host.Http.PostJsonAsync("v1/completions",
            new { model = f.Model.Name, prompt = Prompt, max_tokens = 16, temperature = 0, ignore_eos = true, stop = new[] { stop } });
        Assert.Equal(200, status);
        Assert.Equal(full[..cut], (string)body!["choices"]![0]!["text"]!);
        Assert.Equal("stop", (string)body["choices"]![0]!["finish_reason"]!);

        var events = await Sse(new { model = f.Model.Name, prompt = Prompt, max_tokens = 16, temperature = 0, ignore_eos = true, stop, stream = true });
        var streamed = string.Concat(events.SkipLast(1).Select(e => (string)JsonNode.Parse(e)!["choices"]![0]!["text"]!));
        Assert.Equal(full[..cut], streamed);
    }

    [Fact]
    public async Task Native_generate_returns_the_model_core_tokens_and_the_prompt_logits()
    {
        int[] prompt = [5, 17, 3, 44, 9];
        var (status, body) = await f.Host.Http.PostJsonAsync("v1/generate",
            new { prompt_token_ids = prompt, max_tokens = 9, temperature = 0, return_prompt_logits = true });
        Assert.Equal(200, status);
        var expected = GreedyReference(prompt, 9, stopAtEos: false);
        Assert.Equal(expected, body!["token_ids"]!.AsArray().Select(t => (int)t!).ToArray());
        Assert.Equal(prompt, body["prompt_token_ids"]!.AsArray().Select(t => (int)t!).ToArray());
        Assert.Equal("length", (string)body["finish_reason"]!);
        Assert.Equal(f.Model.Model.Config.VocabSize, body["prompt_logits"]!.AsArray().Count);
    }

    [Fact]
    public async Task Native_generate_stops_at_a_given_stop_token_id()
    {
        int[] prompt = [5, 17, 3, 44, 9];
        var free = GreedyReference(prompt, 9, stopAtEos: false);
        var (_, body) = await f.Host.Http.PostJsonAsync("v1/generate", new { prompt_token_ids = prompt, max_tokens = 9, stop_token_ids = new[] { free[3] } });
        var tokens = body!["token_ids"]!.AsArray().Select(t => (int)t!).ToArray();
        Assert.Equal(free.Take(free.ToList().IndexOf(free[3])).ToArray(), tokens);
        Assert.Equal("stop", (string)body["finish_reason"]!);
    }

    [Fact]
    public async Task Models_lists_the_served_model_with_its_context_length()
    {
        var (status, body) = await f.Host.Http.GetJsonAsync("v1/models");
        Assert.Equal(200, status);
        Assert.Equal("list", (string)body!["object"]!);
        var card = body["data"]![0]!;
        Assert.Equal(f.Model.Name, (string)card["id"]!);
        Assert.Equal(TinyServingModel.Batching.ContextLength, (int)card["max_model_len"]!);
    }

    [Fact]
    public async Task Healthz_answers_200_and_readyz_reports_the_gateway_ready()
    {
        using var health = await f.Host.Http.GetAsync("healthz");
        Assert.Equal(200, (int)health.StatusCode);
        var (status, body) = await f.Host.Http.GetJsonAsync("readyz");
        Assert.Equal(200, status);
        Assert.True((bool)body!["ready"]!);
    }

    [Fact]
    public async Task Chat_prompt_is_rendered_with_the_checkpoint_template()
    {
        // The Qwen template adds a default system prompt; the prompt token count proves it was applied.
        var messages = new[] { new { role = "user", content = "Hello world" } };
        var (status, body) = await f.Host.Http.PostJsonAsync("v1/chat/completions",
            new { model = f.Model.Name, messages, max_completion_tokens = 4, temperature = 0 });
        Assert.Equal(200, status);
        string expectedPrompt = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello world<|im_end|>\n<|im_start|>assistant\n";
        Assert.Equal(f.Model.Tokenizer.Encode(expectedPrompt, addSpecialTokens: false).Count, (int)body!["usage"]!["prompt_tokens"]!);
        Assert.Equal("assistant", (string)body["choices"]![0]!["message"]!["role"]!);
    }

    async Task<List<string>> Sse(object request)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = JsonContent.Create(request) };
        using var response = await f.Host.Http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).ToList();
        Assert.All(events, e => Assert.StartsWith("data: ", e));
        return events.Select(e => e["data: ".Length..]).ToList();
    }
}
