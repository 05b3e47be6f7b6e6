using System.ClientModel;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MoeCluster.Model.Generation;
using MoeCluster.Node.Tests.Support;
using OpenAI;
using OpenAI.Chat;

namespace MoeCluster.Node.Tests;

/// <summary>Sampling controls, logprobs, echo, several prompts, /tokenize and /detokenize and /v1/models — through the
/// official OpenAI .NET client where it has the call, raw HTTP otherwise; each answer compared with the model core.</summary>
[Collection(ServingCollection.Name)]
public sealed class OpenAiSurfaceSpec(ServingFixture f)
{
    ChatClient Chat() => f.Chat();

    static readonly ChatMessage[] Conversation = [new UserChatMessage("Hello there, world.")];
    const string Rendered = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello there, world.<|im_end|>\n<|im_start|>assistant\n";

    IReadOnlyList<int> ChatPrompt => f.Model.Tokenizer.Encode(Rendered, addSpecialTokens: false);

    IReadOnlyList<int> Reference(IReadOnlyList<int> prompt, int maxTokens, SamplingOptions sampling, bool eos = true) =>
        f.Model.GenerateLocally(new GenerationRequest("ref", prompt, maxTokens) { Sampling = sampling, StopTokenIds = eos ? f.Model.Tokenizer.EosTokenIds.ToArray() : [] });

    [Fact]
    public async Task Official_client_penalties_seed_and_logit_bias_have_their_vllm_effect()
    {
        var penalised = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 12, FrequencyPenalty = 1.5f, PresencePenalty = 0.5f };
        var text = (await Chat().CompleteChatAsync(Conversation, penalised)).Value.Content[0].Text;
        var expected = Reference(ChatPrompt, 12, SamplingOptions.GreedyDecoding with { FrequencyPenalty = 1.5, PresencePenalty = 0.5 });
        Assert.Equal(f.Model.Tokenizer.Decode(expected), text);

#pragma warning disable OPENAI001 // Seed is marked experimental in the client; the API has it
        var seeded = new ChatCompletionOptions { Temperature = 1.5f, MaxOutputTokenCount = 12, Seed = 1234 };
#pragma warning restore OPENAI001
        var first = (await Chat().CompleteChatAsync(Conversation, seeded)).Value.Content[0].Text;
        var second = (await Chat().CompleteChatAsync(Conversation, seeded)).Value.Content[0].Text;
        Assert.Equal(first, second);
        Assert.Equal(f.Model.Tokenizer.Decode(Reference(ChatPrompt, 12, new SamplingOptions { Temperature = 1.5, Seed = 1234 })), first);

        int forced = f.Model.Tokenizer.Encode(" fox", addSpecialTokens: false)[0];
        var biased = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 4 };
        biased.LogitBiases[forced] = 100;
        var fox = (await Chat().CompleteChatAsync(Conversation, biased)).Value;
        Assert.Equal(string.Concat(Enumerable.Repeat(f.Model.Tokenizer.Decode([forced]), 4)), fox.Content[0].Text);
    }

    [Fact]
    public async Task Raw_http_min_p_top_k_repetition_penalty_min_tokens_and_stop_token_ids_match_the_model_core()
    {
        var prompt = f.Model.Tokenizer.Encode("The quick brown fox");
        var (status, json) = await f.Host.Http.PostJsonAsync("v1/completions", new
        {
            model = f.Model.Name, prompt = "The quick brown fox", max_tokens = 10, temperature = 0.8, seed = 5, top_k = 20, min_p = 0.05,
            repetition_penalty = 1.3, min_tokens = 4,
        });
        Assert.Equal(200, status);
        var sampling = new SamplingOptions { Temperature = 0.8, Seed = 5, TopK = 20, MinP = 0.05, RepetitionPenalty = 1.3, MinTokens = 4 };
        Assert.Equal(f.Model.Tokenizer.Decode(Reference(prompt, 10, sampling)), (string)json!["choices"]![0]!["text"]!);

        // stop_token_ids ends generation at the first token in the list, and min_tokens holds it back until then.
        var greedy = Reference(prompt, 6, SamplingOptions.GreedyDecoding, eos: false);
        (status, json) = await f.Host.Http.PostJsonAsync("v1/completions", new { model = f.Model.Name, prompt = "The quick brown fox", max_tokens = 6, temperature = 0, ignore_eos = true, stop_token_ids = new[] { greedy[2] } });
        Assert.Equal(f.Model.Tokenizer.Decode(greedy.Take(greedy.ToList().IndexOf(greedy[2]))), (string)json!["choices"]![0]!["text"]!);
        Assert.Equal("stop", (string)json["choices"]![0]!["finish_reason"]!);
    }

    [Fact]
    public async Task Official_client_chat_logprobs_give_each_token_with_its_top_alternatives_streaming_or_not()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 6, IncludeLogProbabilities = true, TopLogProbabilityCount = 3 };
        var completion = (await Chat().CompleteChatAsync(Conversation, options)).Value;
        var logprobs = completion.ContentTokenLogProbabilities;
        Assert.Equal(completion.Usage.OutputTokenCount, logprobs.Count);
        Assert.All(logprobs, l =>
        {
            Assert.Equal(3, l.TopLogProbabilities.Count);
            Assert.Equal(l.TopLogProbabilities[0].Token, l.Token);           // greedy takes the most likely token
            Assert.Equal(l.TopLogProbabilities[0].LogProbability, l.LogProbability, 4);
            Assert.True(l.LogProbability <= 0);
            Assert.True(l.TopLogProbabilities[0].LogProbability >= l.TopLogProbabilities[1].LogProbability);
        });
        Assert.Equal(completion.Content[0].Text, string.Concat(logprobs.Select(l => l.Token)));

        var streamed = new List<ChatTokenLogProbabilityDetails>();
        await foreach (var update in Chat().CompleteChatStreamingAsync(Conversation, options)) streamed.AddRange(update.ContentTokenLogProbabilities);
        Assert.Equal(logprobs.Select(l => (l.Token, Math.Round(l.LogProbability, 4))), streamed.Select(l => (l.Token, Math.Round(l.LogProbability, 4))));
    }

    [Fact]
    public async Task Completions_logprobs_with_echo_score_the_prompt_then_the_completion_streaming_or_not()
    {
        var body = new { model = f.Model.Name, prompt = "Hello world! Hello there", max_tokens = 4, temperature = 0, logprobs = 2, echo = true, ignore_eos = true };
        var (status, json) = await f.Host.Http.PostJsonAsync("v1/completions", body);
        Assert.Equal(200, status);
        var choice = json!["choices"]![0]!;
        var prompt = f.Model.Tokenizer.Encode("Hello world! Hello there");
        Assert.StartsWith("Hello world! Hello there", (string)choice["text"]!);
        var lp = choice["logprobs"]!;
        Assert.Equal(prompt.Count + 4, lp["tokens"]!.AsArray().Count);
        Assert.Null(lp["token_logprobs"]![0]);
        Assert.Null(lp["top_logprobs"]![0]);
        Assert.All(lp["token_logprobs"]!.AsArray().Skip(1), v => Assert.True((float)v! <= 0));
        Assert.All(lp["top_logprobs"]!.AsArray().Skip(1), t => Assert.InRange(t!.AsObject().Count, 1, 2));
        var offsets = lp["text_offset"]!.AsArray().Select(o => (int)o!).ToArray();
        Assert.Equal(0, offsets[0]);
        Assert.True(offsets.SequenceEqual(offsets.Order()));

        // Streaming: the same tokens and logprobs, the prompt's in the first event.
        var tokens = new List<string>();
        var values = new List<float?>();
        await foreach (var chunk in StreamAsync("v1/completions", new { body.model, body.prompt, body.max_tokens, body.temperature, body.logprobs, body.echo, body.ignore_eos, stream = true }))
            if (chunk["choices"]!.AsArray() is [var c, ..] && c!["logprobs"] is JsonObject l)
            {
                tokens.AddRange(l["tokens"]!.AsArray().Select(t => (string)t!));
                values.AddRange(l["token_logprobs"]!.AsArray().Select(v => (float?)v));
            }
        Assert.Equal(lp["tokens"]!.AsArray().Select(t => (string)t!), tokens);
        Assert.Equal(lp["token_logprobs"]!.AsArray().Select(v => v is null ? (double?)null : Math.Round((float)v, 4)), values.Select(v => v is null ? (double?)null : Math.Round(v.Value, 4)));
    }

    [Fact]
    public async Task Several_prompts_in_one_completions_call_are_several_choices_each_as_if_sent_alone()
    {
        object[] prompts = ["Hello world", new[] { 5, 6, 7 }, "The quick"];
        var (status, json) = await f.Host.Http.PostJsonAsync("v1/completions", new { model = f.Model.Name, prompt = prompts, max_tokens = 5, temperature = 0, ignore_eos = true });
        Assert.Equal(200, status);
        var choices = json!["choices"]!.AsArray();
        Assert.Equal([0, 1, 2], choices.Select(c => (int)c!["index"]!));
        for (int i = 0; i < prompts.Length; i++)
        {
            var (_, alone) = await f.Host.Http.PostJsonAsync("v1/completions", new { model = f.Model.Name, prompt = prompts[i], max_tokens = 5, temperature = 0, ignore_eos = true });
            Assert.Equal((string)alone!["choices"]![0]!["text"]!, (string)choices[i]!["text"]!);
        }
        Assert.Equal(15, (int)json["usage"]!["completion_tokens"]!);

        var streamed = new Dictionary<int, StringBuilder>();
        await foreach (var chunk in StreamAsync("v1/completions", new { model = f.Model.Name, prompt = prompts, max_tokens = 5, temperature = 0, ignore_eos = true, stream = true }))
            foreach (var c in chunk["choices"]!.AsArray())
                (streamed.TryGetValue((int)c!["index"]!, out var sb) ? sb : streamed[(int)c["index"]!] = new StringBuilder()).Append((string)c["text"]!);
        Assert.Equal(choices.Select(c => (string)c!["text"]!), streamed.OrderBy(p => p.Key).Select(p => p.Value.ToString()));
    }

    [Fact]
    public async Task Tokenize_and_detokenize_use_the_served_tokenizer_in_vllms_shapes()
    {
        var (status, json) = await f.Host.Http.PostJsonAsync("tokenize", new { model = f.Model.Name, prompt = "Hello world!", return_token_strs = true });
        Assert.Equal(200, status);
        var expected = f.Model.Tokenizer.Encode("Hello world!");
        Assert.Equal(expected, json!["tokens"]!.AsArray().Select(t => (int)t!));
        Assert.Equal(expected.Count, (int)json["count"]!);
        Assert.Equal(TinyServingModel.Batching.ContextLength, (int)json["max_model_len"]!);
        Assert.Equal(expected.Count, json["token_strs"]!.AsArray().Count);

        (status, json) = await f.Host.Http.PostJsonAsync("v1/tokenize", new { messages = new[] { new { role = "user", content = "Hello there, world." } } });
        Assert.Equal(200, status);
        Assert.Equal(ChatPrompt, json!["tokens"]!.AsArray().Select(t => (int)t!));

        (status, json) = await f.Host.Http.PostJsonAsync("detokenize", new { tokens = expected });
        Assert.Equal(200, status);
        Assert.Equal("Hello world!", (string)json!["prompt"]!);
    }

    [Fact]
    public async Task Models_list_the_context_length_and_dtype()
    {
        var (status, json) = await f.Host.Http.GetJsonAsync("v1/models");
        Assert.Equal(200, status);
        var card = json!["data"]![0]!;
        Assert.Equal(TinyServingModel.Batching.ContextLength, (int)card["max_model_len"]!);
        Assert.Equal("float32", (string)card["dtype"]!);
        Assert.Equal(f.Model.Model.Config.VocabSize, (int)card["vocab_size"]!);
    }

    async IAsyncEnumerable<JsonNode> StreamAsync(string path, object body)
    {
        using var response = await f.Host.Http.PostAsync(path, new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"));
        Assert.Equal(200, (int)response.StatusCode);
        foreach (var line in (await response.Content.ReadAsStringAsync()).Split('\n'))
            if (line.StartsWith("data: {")) yield return JsonNode.Parse(line[6..])!;
    }
}
