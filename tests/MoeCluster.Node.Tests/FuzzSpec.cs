using System.Text;
using System.Text.Json.Nodes;
using MoeCluster.Node.Tests.Support;

namespace MoeCluster.Node.Tests;

/// <summary>Hundreds of seeded random malformed bodies: never a 5xx, always an OpenAI error for a 4xx, and the server
/// still answers a valid request afterwards.</summary>
[Collection(ServingCollection.Name)]
public sealed class FuzzSpec(ServingFixture f)
{
    static readonly string[] Endpoints = ["v1/completions", "v1/chat/completions", "v1/generate"];
    static readonly string[] Fields = ["model", "prompt", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "seed", "n", "stop", "stream", "stream_options", "prompt_token_ids", "stop_token_ids", "return_prompt_logits", "ignore_eos", "logprobs"];

    [Fact]
    public async Task Four_hundred_random_malformed_bodies_get_no_5xx_and_a_valid_request_still_succeeds()
    {
        var random = new Random(20261124);
        var statuses = new Dictionary<int, int>();
        for (int i = 0; i < 400; i++)
        {
            string endpoint = Endpoints[random.Next(Endpoints.Length)];
            byte[] body = Mutate(random, Valid(endpoint));
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new("application/json");
            using var response = await f.Host.Http.PostAsync(endpoint, content);
            int status = (int)response.StatusCode;
            statuses[status] = statuses.GetValueOrDefault(status) + 1;
            string text = await response.Content.ReadAsStringAsync();
            Assert.True(status < 500, $"case {i} {endpoint} got {status} for body {Show(body)}: {text}");
            if (status >= 400)
            {
                JsonNode? json = null;
                try { json = JsonNode.Parse(text); } catch (System.Text.Json.JsonException) { }
                OpenAiErrors.AssertError(json, null);
            }
        }
        Assert.True(statuses.Where(s => s.Key >= 400).Sum(s => s.Value) > 300, $"the fuzzer should mostly produce bad requests: {string.Join(", ", statuses)}");

        var (ok, result) = await f.Host.Http.PostJsonAsync("v1/completions", new { model = f.Model.Name, prompt = "Hello world", max_tokens = 3 });
        Assert.Equal(200, ok);
        Assert.NotNull(result!["choices"]![0]!["text"]);
    }

    string Valid(string endpoint) => endpoint switch
    {
        "v1/chat/completions" => $$"""{"model":"{{f.Model.Name}}","messages":[{"role":"user","content":"Hello"}],"max_completion_tokens":2,"temperature":0.5,"stop":["x"]}""",
        "v1/generate" => """{"prompt_token_ids":[5,6,7],"max_tokens":2,"temperature":0,"return_prompt_logits":false,"stop_token_ids":[1]}""",
        _ => $$"""{"model":"{{f.Model.Name}}","prompt":"Hello world","max_tokens":2,"top_p":0.9,"seed":3,"stream":false}""",
    };

    static byte[] Mutate(Random random, string valid)
    {
        var bytes = Encoding.UTF8.GetBytes(valid);
        switch (random.Next(9))
        {
            case 0: return bytes[..random.Next(bytes.Length)];                                      // truncated
            case 1: { var b = (byte[])bytes.Clone(); for (int k = 0; k < 1 + random.Next(4); k++) b[random.Next(b.Length)] = (byte)random.Next(256); return b; }  // random bytes flipped (often invalid UTF-8)
            case 2: { var b = new byte[random.Next(1, 200)]; random.NextBytes(b); return b; }     // pure noise
            case 3: return Encoding.UTF8.GetBytes(valid.Replace(":2", ":" + Huge(random)));         // huge or odd numbers
            case 4: return Encoding.UTF8.GetBytes(ReplaceField(random, valid, Junk(random, 0)));   // wrong types
            case 5: return Encoding.UTF8.GetBytes(Junk(random, 0));                                 // nested junk as the whole body
            case 6: return [.. bytes[..random.Next(bytes.Length)], 0xC3, 0x28, .. bytes[random.Next(bytes.Length)..]];  // invalid UTF-8 inside
            case 7: return Encoding.UTF8.GetBytes(new string('[', random.Next(50, 2000)));          // too deep
            default: return Encoding.UTF8.GetBytes(valid.Replace("\"", random.Next(2) == 0 ? "'" : ""));  // not JSON
        }
    }

    static string ReplaceField(Random random, string valid, string value)
    {
        string field = Fields[random.Next(Fields.Length)];
        var obj = JsonNode.Parse(valid)!.AsObject();
        obj[field] = JsonNode.Parse(value);
        if (random.Next(4) == 0) obj.Remove(Fields[random.Next(Fields.Length)]);
        return obj.ToJsonString();
    }

    static string Huge(Random random) => random.Next(6) switch
    {
        0 => "1e308",
        1 => "-99999999999999999999",
        2 => "18446744073709551616",
        3 => "0.0000001",
        4 => "-1",
        _ => "2147483648",
    };

    static string Junk(Random random, int depth) => (depth > 3 ? random.Next(4) : random.Next(8)) switch
    {
        0 => "null",
        1 => random.Next(2) == 0 ? "true" : "false",
        2 => random.Next(-1000, 1000).ToString(),
        3 => "\"" + new string((char)random.Next('a', 'z'), random.Next(0, 6)) + "\"",
        4 => "[" + string.Join(",", Enumerable.Range(0, random.Next(4)).Select(_ => Junk(random, depth + 1))) + "]",
        5 => "{" + string.Join(",", Enumerable.Range(0, random.Next(4)).Select(k => $"\"{Fields[random.Next(Fields.Length)]}\":{Junk(random, depth + 1)}")) + "}",
        6 => Huge(random),
        _ => "[[[{\"role\":[]}]]]",
    };

    static string Show(byte[] body) => body.Length > 300 ? Convert.ToHexString(body[..300]) + "..." : Convert.ToHexString(body);
}
