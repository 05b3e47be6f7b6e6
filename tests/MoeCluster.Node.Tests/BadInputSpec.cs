using System.Text;
using System.Text.Json.Nodes;
using MoeCluster.Node.Http;
using MoeCluster.Node.Tests.Support;
using static MoeCluster.Node.Tests.Support.OpenAiErrors;

namespace MoeCluster.Node.Tests;

/// <summary>Every kind of bad request gets a 4xx OpenAI-style error naming the field at fault.</summary>
[Collection(ServingCollection.Name)]
public sealed class BadInputSpec(ServingFixture f)
{
    string Model => f.Model.Name;

    public static TheoryData<string, string, int, string?> BadCompletions() => new()
    {
        // endpoint, JSON body (MODEL is replaced by the served model name), expected status, expected param
        { "v1/completions", """{"model":"MODEL","prompt":"hi","max_tokens":"ten"}""", 400, "max_tokens" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","max_tokens":0}""", 400, "max_tokens" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","max_tokens":-5}""", 400, "max_tokens" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","max_tokens":100000}""", 400, "max_tokens" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","max_tokens":1e40}""", 400, "max_tokens" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","max_tokens":2.5}""", 400, "max_tokens" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","temperature":-0.1}""", 400, "temperature" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","temperature":"hot"}""", 400, "temperature" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","top_p":1.5}""", 400, "top_p" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","top_p":0}""", 400, "top_p" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","n":0}""", 400, "n" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","n":2,"best_of":1}""", 400, "best_of" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","best_of":3,"stream":true}""", 400, "best_of" },
        { "v1/completions", """{"model":"MODEL","prompt":["a","b"],"n":100}""", 400, "n" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","seed":"abc"}""", 400, "seed" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","stop":5}""", 400, "stop" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","stop":["a","b","c","d","e"]}""", 400, "stop" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","stream":"yes"}""", 400, "stream" },
        { "v1/completions", """{"model":"MODEL","prompt":{"text":"hi"}}""", 400, "prompt" },
        { "v1/completions", """{"model":"MODEL","prompt":[]}""", 400, "prompt" },
        { "v1/completions", """{"model":"MODEL","prompt":[1,2,99999]}""", 400, "prompt" },
        { "v1/completions", """{"model":"MODEL","prompt":[1,-2]}""", 400, "prompt[1]" },
        { "v1/completions", """{"model":"MODEL","prompt":["a",5]}""", 400, "prompt[1]" },
        { "v1/completions", """{"model":"MODEL","prompt":["a",[1,99999]]}""", 400, "prompt[1]" },
        { "v1/completions", """{"model":"MODEL"}""", 400, "prompt" },
        { "v1/completions", """{"prompt":"hi"}""", 400, "model" },
        { "v1/completions", """{"model":42,"prompt":"hi"}""", 400, "model" },
        { "v1/completions", """{"model":"gpt-4o","prompt":"hi"}""", 404, "model" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","logprobs":21}""", 400, "logprobs" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","logprobs":true}""", 400, "logprobs" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"user","content":"hi"}],"top_logprobs":3}""", 400, "top_logprobs" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"user","content":"hi"}],"logprobs":true,"top_logprobs":21}""", 400, "top_logprobs" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","priority":"high"}""", 400, "priority" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","min_tokens":5,"max_tokens":2}""", 400, "min_tokens" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","best_of":129}""", 400, "best_of" },
        { "v1/chat/completions", """{"model":"MODEL"}""", 400, "messages" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[]}""", 400, "messages" },
        { "v1/chat/completions", """{"model":"MODEL","messages":"hi"}""", 400, "messages" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"content":"hi"}]}""", 400, "messages[0].role" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"wizard","content":"hi"}]}""", 400, "messages[0].role" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"user","content":7}]}""", 400, "messages[0].content" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"user","content":[{"type":"image_url"}]}]}""", 400, "messages[0].content[0].type" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":0}""", 400, "max_completion_tokens" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"user","content":"hi"}],"n":129}""", 400, "n" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"user","content":"hi"}],"best_of":2}""", 400, "best_of" },
        { "v1/chat/completions", """{"model":"nope","messages":[{"role":"user","content":"hi"}]}""", 404, "model" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function"}]}""", 400, "tools[0].function" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"user","content":"hi"}],"tools":5}""", 400, "tools" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"user","content":"hi"}],"tool_choice":"required"}""", 400, "tool_choice" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"tool","content":"42"}]}""", 400, "messages[0].tool_call_id" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"xml"}}""", 400, "response_format.type" },
        { "v1/generate", """{"max_tokens":3}""", 400, "prompt_token_ids" },
        { "v1/generate", """{"prompt_token_ids":[1,2],"max_tokens":0}""", 400, "max_tokens" },
        { "v1/generate", """{"prompt_token_ids":[1,2],"return_prompt_logits":"yes"}""", 400, "return_prompt_logits" },
        { "v1/generate", """{"prompt_token_ids":[1,2],"stop_token_ids":[1.5]}""", 400, "stop_token_ids[0]" },
        // Escaped lone surrogates are valid JSON but no .NET string can hold them.
        { "v1/completions", """{"model":"MODEL","prompt":"ab\ud800cd"}""", 400, "prompt" },
        { "v1/completions", """{"model":"ab\ud800cd","prompt":"hi"}""", 400, "model" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","stop":"\udfff"}""", 400, "stop" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","stop":["ok","\ud800"]}""", 400, "stop[1]" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"user","content":"ab\ud800cd"}]}""", 400, "messages[0].content" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"us\ud800er","content":"hi"}]}""", 400, "messages[0].role" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"user","content":[{"type":"text","text":"\ud800"}]}]}""", 400, "messages[0].content[0].text" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"user","content":"hi","\ud800":1}]}""", 400, "messages[0]" },
        // No field is silently ignored: unknown ones are refused as OpenAI refuses them.
        { "v1/completions", """{"model":"MODEL","prompt":"hi","temprature":0.5}""", 400, "temprature" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"user","content":"hi","nam":"x"}]}""", 400, "messages[0].nam" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true,"x":1}}""", 400, "stream_options.x" },
        { "v1/chat/completions", """{"model":"MODEL","messages":[{"role":"user","content":"hi"}],"functions":[]}""", 400, "functions" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","suffix":"x"}""", 400, "suffix" },
        { "v1/generate", """{"prompt_token_ids":[1,2],"messages":[]}""", 400, "messages" },
        // Sampling bounds.
        { "v1/completions", """{"model":"MODEL","prompt":"hi","frequency_penalty":2.5}""", 400, "frequency_penalty" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","presence_penalty":"x"}""", 400, "presence_penalty" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","repetition_penalty":0}""", 400, "repetition_penalty" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","min_p":1.5}""", 400, "min_p" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","logit_bias":{"abc":1}}""", 400, "logit_bias" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","logit_bias":{"5":101}}""", 400, "logit_bias.5" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","logit_bias":{"999999":1}}""", 400, "logit_bias" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","stop_token_ids":[999999]}""", 400, "stop_token_ids[0]" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi","temperature":1e400}""", 400, "temperature" },
        { "tokenize", """{"prompt":"hi","messages":[{"role":"user","content":"hi"}]}""", 400, "messages" },
        { "detokenize", """{"tokens":[1,999999]}""", 400, "tokens[1]" },
        { "v1/completions", """{"model":"MODEL","prompt":"hi"} trailing""", 400, null },
        { "v1/completions", "{\"model\":\"MODEL\",\"prompt\":\"hi", 400, null },
        { "v1/completions", """[1,2,3]""", 400, null },
        { "v1/completions", "", 400, null },
        { "v1/completions", "null", 400, null },
    };

    [Theory]
    [MemberData(nameof(BadCompletions))]
    public async Task A_bad_request_gets_an_openai_error_naming_the_field(string endpoint, string body, int status, string? param)
    {
        var (actual, json) = await f.Host.Http.PostRawAsync(endpoint, Encoding.UTF8.GetBytes(body.Replace("MODEL", Model)));
        Assert.True(status == actual, $"{endpoint} {body}: expected {status}, got {actual}: {json}");
        AssertError(json, param);
    }

    [Fact]
    public async Task A_prompt_longer_than_the_context_names_the_prompt()
    {
        var prompt = string.Join(' ', Enumerable.Repeat("quick brown fox", 1500));
        var (status, json) = await f.Host.Http.PostJsonAsync("v1/completions", new { model = Model, prompt, max_tokens = 1 });
        Assert.Equal(400, status);
        AssertError(json, "prompt");
        Assert.Equal("context_length_exceeded", (string)json!["error"]!["code"]!);

        var messages = new[] { new { role = "user", content = prompt } };
        (status, json) = await f.Host.Http.PostJsonAsync("v1/chat/completions", new { model = Model, messages });
        Assert.Equal(400, status);
        AssertError(json, "messages");
    }

    [Fact]
    public async Task Invalid_utf8_in_the_body_is_a_400_not_a_crash()
    {
        var bytes = Encoding.UTF8.GetBytes($$"""{"model":"{{Model}}","prompt":"caf""").Concat(new byte[] { 0xC3, 0x28, 0xFF }).Concat("\"}"u8.ToArray()).ToArray();
        var (status, json) = await f.Host.Http.PostRawAsync("v1/completions", bytes);
        Assert.Equal(400, status);
        AssertError(json, null);
        Assert.Equal("invalid_encoding", (string)json!["error"]!["code"]!);
    }

    [Fact]
    public async Task An_oversized_body_is_refused_with_413()
    {
        var prompt = new string('a', (int)new ServingOptions().MaxRequestBodyBytes + 10);
        var (status, json) = await f.Host.Http.PostJsonAsync("v1/completions", new { model = Model, prompt });
        Assert.Equal(413, status);
        AssertError(json, null);
    }

    [Fact]
    public async Task A_temperature_too_small_to_scale_by_decodes_greedily_instead_of_producing_garbage()
    {
        var (status, tiny) = await f.Host.Http.PostJsonAsync("v1/completions", new { model = Model, prompt = "Hello world", max_tokens = 8, temperature = 1e-308, ignore_eos = true });
        Assert.Equal(200, status);
        var (_, greedy) = await f.Host.Http.PostJsonAsync("v1/completions", new { model = Model, prompt = "Hello world", max_tokens = 8, temperature = 0, ignore_eos = true });
        Assert.Equal((string)greedy!["choices"]![0]!["text"]!, (string)tiny!["choices"]![0]!["text"]!);
    }

    [Fact]
    public async Task Generate_with_a_token_id_outside_the_vocabulary_is_a_clear_cli_error_not_a_stack_trace()
    {
        var (exit, stdout, stderr) = await NodeProcess.RunAsync(["generate", "--model", f.Model.Directory, "--token-ids", "1,999999", "--max-tokens", "2"], TimeSpan.FromSeconds(120));
        Assert.Equal(2, exit);
        Assert.Contains("token id 999999 is outside the vocabulary", stderr);
        Assert.DoesNotContain("   at ", stderr + stdout);
    }

    [Fact]
    public async Task A_nul_in_the_path_is_refused_by_kestrel_with_400_not_a_5xx()
    {
        using var response = await f.Host.Http.GetAsync("v1/jobs/%00/results");
        Assert.Equal(400, (int)response.StatusCode);
    }

    [Fact]
    public async Task A_wrong_method_is_a_json_405()
    {
        using var response = await f.Host.Http.PostAsync("healthz", null);
        Assert.Equal(405, (int)response.StatusCode);
        AssertError(JsonNode.Parse(await response.Content.ReadAsStringAsync()), null);
    }

    [Fact]
    public async Task An_unknown_v1_path_is_a_json_404()
    {
        var (status, json) = await f.Host.Http.GetJsonAsync("v1/embeddings");
        Assert.Equal(404, status);
        AssertError(json, null);
    }

    [Fact]
    public async Task An_overloaded_gateway_gives_429_with_retry_after()
    {
        await using var host = await ServingHost.StartAsync(f.Model, wrap: inner => new OverloadedGateway(inner));
        using var response = await host.Http.PostAsync("v1/completions",
            new StringContent($$"""{"model":"{{host.Options.ModelName}}","prompt":"hi","max_tokens":2}""", Encoding.UTF8, "application/json"));
        Assert.Equal(429, (int)response.StatusCode);
        Assert.Equal("1", response.Headers.RetryAfter?.Delta?.TotalSeconds.ToString());
        AssertError(JsonNode.Parse(await response.Content.ReadAsStringAsync()), null);
    }

    [Fact]
    public async Task Readyz_is_503_with_the_gateway_detail_while_not_ready()
    {
        await using var host = await ServingHost.StartAsync(f.Model, wrap: inner => new NotReadyGateway(inner));
        var (status, json) = await host.Http.GetJsonAsync("readyz");
        Assert.Equal(503, status);
        Assert.Equal("3 of 8 experts placed", (string)json!["detail"]!);
        Assert.Equal(200, (int)(await host.Http.GetAsync("healthz")).StatusCode);
    }
}
