using System.Text;
using System.Text.Json.Nodes;
using MoeCluster.Node.Tests.Support;

namespace MoeCluster.Node.Tests.Fuzz;

/// <summary>Thousands of generated hostile requests on every endpoint (<see cref="FuzzTargets"/>): never a 5xx, a hang
/// or a reset; every 4xx is an OpenAI error, naming the field when one field was replaced; and the server still serves
/// a valid request afterwards.</summary>
[Collection(ServingCollection.Name)]
public sealed class FuzzSpec(ServingFixture f)
{
    sealed record Case(string Target, string What, Func<HttpRequestMessage> Build, string? Field = null);

    [Fact]
    public async Task Two_thousand_generated_hostile_requests_on_every_endpoint_get_no_5xx_and_a_valid_request_still_succeeds()
    {
        var cases = Cases(new Random(20261124)).ToList();
        Assert.True(cases.Count >= 2000, $"only {cases.Count} cases");
        var statuses = new Dictionary<int, int>();
        var failures = new List<string>();
        foreach (var c in cases)
        {
            using var request = c.Build();
            string body = $"{request.Method} {request.RequestUri} " + (request.Content is null ? "" : Show(await request.Content.ReadAsByteArrayAsync()));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            int status;
            string text;
            try
            {
                using var response = await f.Host.Http.SendAsync(request, timeout.Token);
                status = (int)response.StatusCode;
                text = await response.Content.ReadAsStringAsync(timeout.Token);
            }
            catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
            {
                failures.Add($"{c.Target} {c.What}: no answer ({e.GetType().Name}: {e.Message}) for {body}");
                continue;
            }
            statuses[status] = statuses.GetValueOrDefault(status) + 1;
            if (status >= 500) failures.Add($"{c.Target} {c.What}: {status} for {body}: {text}");
            else if (status >= 400 && Error(text) is not { } error) failures.Add($"{c.Target} {c.What}: {status} without an OpenAI error for {body}: {text}");
            else if (status >= 400 && c.Field is not null && !Names(Error(text)!, c.Field))
                failures.Add($"{c.Target} {c.What}: {status} does not name '{c.Field}': {text}");
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {cases.Count} cases failed:\n" + string.Join("\n", failures.Take(40)));
        Assert.True(statuses.Where(s => s.Key is >= 400 and < 500).Sum(s => s.Value) > cases.Count / 2,
            $"the fuzzer should mostly produce bad requests: {string.Join(", ", statuses)}");
        Assert.True(statuses.GetValueOrDefault(200) > 100, $"some mutations are valid requests: {string.Join(", ", statuses)}");

        var (ok, result) = await f.Host.Http.PostJsonAsync("v1/completions", new { model = f.Model.Name, prompt = "Hello world", max_tokens = 3 });
        Assert.Equal(200, ok);
        Assert.NotNull(result!["choices"]![0]!["text"]);
    }

    IEnumerable<Case> Cases(Random random)
    {
        foreach (var t in FuzzTargets.All(f.Model.Name))
        {
            if (t.ValidJson is { } valid)
            {
                yield return new Case(t.Name, "the valid body", () => Json(t, valid));
                foreach (var field in t.Fields)
                    foreach (var sample in JsonMutations.Samples)
                        yield return new Case(t.Name, $"{field} = {sample}", () => Json(t, JsonMutations.Replace(valid, field, sample)), field);
                foreach (var escape in JsonMutations.Escapes)
                    foreach (var (where, body) in JsonMutations.WithEscapes(valid, escape))
                        yield return new Case(t.Name, $"{escape} in {where}", () => Json(t, body));
                for (int i = 0; i < 100; i++)
                {
                    var bytes = JsonMutations.Damage(random, valid);
                    yield return new Case(t.Name, $"damaged body {i}", () => Raw(t, bytes));
                }
            }
            if (t.Custom is { } custom)
                for (int i = 0; i < t.CustomCases; i++)
                {
                    var seed = random.Next();
                    yield return new Case(t.Name, $"case {i} (seed {seed})", () => custom(new Random(seed)));
                }
        }
    }

    static HttpRequestMessage Json(FuzzTarget t, string body) => Raw(t, Encoding.UTF8.GetBytes(body));

    static HttpRequestMessage Raw(FuzzTarget t, byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/json");
        return new HttpRequestMessage(t.Method, t.Path) { Content = content };
    }

    static JsonNode? Error(string text)
    {
        try { return JsonNode.Parse(text) is { } json && json["error"] is JsonObject e && e["message"] is not null && e.ContainsKey("param") ? e : null; }
        catch (System.Text.Json.JsonException) { return null; }
    }

    /// <summary>The error's param is the replaced field or lies inside it (<c>messages[0]</c> for <c>messages</c>...).</summary>
    static bool Names(JsonNode error, string field)
    {
        var param = (string?)error["param"];
        if (param is null) return false;
        string top = field.Split('.', '[')[0];
        return param == field || param.StartsWith(field + ".") || param.StartsWith(field + "[") || (field.Contains('[') || field.Contains('.')) && param.StartsWith(top);
    }

    static string Show(byte[] body) => body.Length > 300 ? Encoding.UTF8.GetString(body[..300]) + "..." : Encoding.UTF8.GetString(body);
}
