using System.Text;
using MoeCluster.Node.Http;

namespace MoeCluster.Node.Tests.Fuzz;

/// <summary>Every endpoint of the serving host, as fuzz targets. Add a new endpoint here (a JSON one with its valid body
/// and fields, another kind with <see cref="FuzzTarget.Custom"/>) and <see cref="FuzzSpec"/> attacks it too.</summary>
public static class FuzzTargets
{
    /// <summary>Names no endpoint knows, fuzzed beside the real fields.</summary>
    static readonly string[] Unknown = ["unknown_field", "", "Model", "suffix", "functions", "\\ud800"];

    public static IReadOnlyList<FuzzTarget> All(string model)
    {
        string completion = $$$"""{"model":"{{{model}}}","prompt":"Hello world","max_tokens":2,"top_p":0.9,"seed":3,"stream":false,"stop":["x"],"stream_options":{"include_usage":true}}""";
        string chat = $$$"""{"model":"{{{model}}}","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hello"}]}],"max_completion_tokens":2,"temperature":0.5,"stop":["x"],"stream_options":{"include_usage":false}}""";
        string generate = """{"prompt_token_ids":[5,6,7],"max_tokens":2,"temperature":0,"return_prompt_logits":false,"stop_token_ids":[1]}""";
        return
        [
            new("completions", HttpMethod.Post, "v1/completions")
            {
                ValidJson = completion,
                Fields = [.. RequestFields.Completion, .. Unknown, "stop[0]", "stream_options.include_usage"],
            },
            new("chat", HttpMethod.Post, "v1/chat/completions")
            {
                ValidJson = chat,
                Fields =
                [
                    .. RequestFields.Chat, .. Unknown, "messages[0]", "messages[0].role", "messages[0].content", "messages[1].content[0]",
                    "messages[1].content[0].type", "messages[1].content[0].text", "stop[0]", "stream_options.include_usage",
                ],
            },
            new("generate", HttpMethod.Post, "v1/generate") { ValidJson = generate, Fields = [.. RequestFields.Generate, .. Unknown, "prompt_token_ids[0]"] },
            new("tokenize", HttpMethod.Post, "tokenize")
            {
                ValidJson = $$"""{"model":"{{model}}","prompt":"Hello world","add_special_tokens":true,"return_token_strs":true}""",
                // 'prompt' and 'messages' exclude each other (BadInputSpec covers both at once): each target fuzzes its own.
                Fields = [.. TokenizeEndpoints.TokenizeFields.Where(f => f != "messages"), .. Unknown],
            },
            new("tokenize chat", HttpMethod.Post, "v1/tokenize")
            {
                ValidJson = $$"""{"model":"{{model}}","messages":[{"role":"user","content":"Hi"}],"add_generation_prompt":true}""",
                Fields = [.. TokenizeEndpoints.TokenizeFields.Where(f => f != "prompt"), .. Unknown, "messages[0].content"],
            },
            new("detokenize", HttpMethod.Post, "detokenize") { ValidJson = """{"tokens":[5,6,7]}""", Fields = [.. TokenizeEndpoints.DetokenizeFields, .. Unknown, "tokens[0]"] },
            new("jobs", HttpMethod.Post, "v1/jobs")
            {
                // A JSONL body whose lines are damaged or type-mutated requests: the upload succeeds or gets a 4xx.
                Custom = random => Jsonl(random, completion, chat),
                CustomCases = 60,
            },
            new("files", HttpMethod.Post, "v1/files")
            {
                // Multipart uploads, intact or truncated, with the boundary changed, the purpose mutated, lines damaged.
                Custom = random => Upload(random, completion),
                CustomCases = 80,
            },
            new("batches", HttpMethod.Post, "v1/batches")
            {
                Custom = random => Batch(random),
                CustomCases = 60,
            },
            new("paths", HttpMethod.Get, "")
            {
                Custom = random => Path(random, model),
                CustomCases = 150,
            },
        ];
    }

    static HttpRequestMessage Jsonl(Random random, string completion, string chat)
    {
        var lines = new StringBuilder();
        for (int i = 0; i < 1 + random.Next(3); i++)
        {
            string valid = random.Next(2) == 0 ? completion : chat;
            string line = random.Next(3) switch
            {
                0 => Encoding.UTF8.GetString(JsonMutations.Damage(random, valid)).Replace('\n', ' '),
                1 => JsonMutations.Replace(valid, random.Next(2) == 0 ? "max_tokens" : "model", JsonMutations.Samples[random.Next(JsonMutations.Samples.Length)]),
                _ => valid.Insert(1, $"\"custom_id\":\"c{JsonMutations.Escapes[random.Next(JsonMutations.Escapes.Length)]}\","),
            };
            lines.Append(line).Append('\n');
        }
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(lines.ToString()));
        content.Headers.ContentType = new("application/jsonl");
        return new HttpRequestMessage(HttpMethod.Post, "v1/jobs") { Content = content };
    }

    static HttpRequestMessage Upload(Random random, string completion)
    {
        string line = $$"""{"custom_id":"c{{random.Next(1000)}}","method":"POST","url":"/v1/completions","body":{{completion}}}""";
        string jsonl = string.Join("\n", Enumerable.Range(0, 1 + random.Next(3)).Select(_ => random.Next(3) == 0 ? Encoding.UTF8.GetString(JsonMutations.Damage(random, line)).Replace('\n', ' ') : line)) + "\n";
        string purpose = random.Next(3) == 0 ? JsonMutations.Samples[random.Next(JsonMutations.Samples.Length)] : "batch";
        string boundary = "fuzz" + random.Next(1000);
        var body = Encoding.UTF8.GetBytes(
            $"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{purpose}\r\n" +
            $"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n{jsonl}\r\n--{boundary}--\r\n");
        string declared = random.Next(4) switch { 0 => "other" + boundary, 1 => "", _ => boundary };
        if (random.Next(3) == 0) body = body[..random.Next(body.Length)];   // truncated upload
        var content = new ByteArrayContent(body);
        content.Headers.TryAddWithoutValidation("Content-Type", declared.Length == 0 ? "multipart/form-data" : $"multipart/form-data; boundary={declared}");
        return new HttpRequestMessage(HttpMethod.Post, "v1/files") { Content = content };
    }

    static HttpRequestMessage Batch(Random random)
    {
        const string valid = """{"input_file_id":"file-fuzz","endpoint":"/v1/completions","completion_window":"24h","metadata":{"k":"v"}}""";
        string[] fields = ["input_file_id", "endpoint", "completion_window", "metadata", "metadata.k"];
        byte[] body = random.Next(3) == 0
            ? JsonMutations.Damage(random, valid)
            : Encoding.UTF8.GetBytes(JsonMutations.Replace(valid, fields[random.Next(fields.Length)], JsonMutations.Samples[random.Next(JsonMutations.Samples.Length)]));
        return new HttpRequestMessage(HttpMethod.Post, "v1/batches") { Content = new ByteArrayContent(body) { Headers = { ContentType = new("application/json") } } };
    }

    /// <summary>Odd path segments. "%00" is not among them: Kestrel refuses a NUL in the path with a bare 400 before any
    /// middleware runs (BadInputSpec checks that it stays a 400).</summary>
    static readonly string[] Segments = ["x", "%01", "%ff%fe", "..", "%2e%2e", new string('a', 3000), "job_", "%F0%9F%98%80", "\u00e9", "1e400"];

    /// <summary>GET, POST, PUT and DELETE on every route, known or not, with odd ids, query strings and bodies.</summary>
    static HttpRequestMessage Path(Random random, string model)
    {
        string seg = Segments[random.Next(Segments.Length)];
        string[] paths =
        [
            "v1/models", $"v1/models/{model}", $"v1/models/{seg}", $"v1/jobs/{seg}", $"v1/jobs/{seg}/results", $"v1/jobs/{seg}/cancel",
            "v1/completions", "v1/chat/completions", "v1/generate", "v1/jobs", "healthz", "readyz", "metrics", "v1/cluster/members",
            "v1/cluster/placement", $"v1/{seg}", "v1/", "v1/embeddings", "v1/files", $"v1/files/{seg}", $"v1/files/{seg}/content",
            $"v1/files/file-out-{seg}/content", $"v1/files/file-err-job_{seg}", "v1/batches", $"v1/batches?limit={seg}&after={seg}",
            $"v1/batches/{seg}", $"v1/batches/{seg}/cancel",
        ];
        HttpMethod[] methods = [HttpMethod.Get, HttpMethod.Get, HttpMethod.Post, HttpMethod.Put, HttpMethod.Delete];
        var request = new HttpRequestMessage(methods[random.Next(methods.Length)], paths[random.Next(paths.Length)] + (random.Next(4) == 0 ? $"?q={seg}" : ""));
        if (request.Method != HttpMethod.Get && random.Next(2) == 0)
            request.Content = new ByteArrayContent(JsonMutations.Damage(random, "{\"a\":1}")) { Headers = { ContentType = new("application/json") } };
        return request;
    }
}
