using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace MoeCluster.Node.Tests.Support;

/// <summary>One tiny model and one running server shared by the HTTP specs (starting either takes a moment).</summary>
public sealed class ServingFixture : IAsyncLifetime
{
    public TinyServingModel Model { get; private set; } = null!;
    public ServingHost Host { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Model = new TinyServingModel();
        Host = await ServingHost.StartAsync(Model);
    }

    public async Task DisposeAsync()
    {
        await Host.DisposeAsync();
        Model.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class ServingCollection : ICollectionFixture<ServingFixture>
{
    public const string Name = "serving";
}

public static class HttpJson
{
    public static async Task<(int Status, JsonNode? Body)> PostJsonAsync(this HttpClient http, string path, object body)
    {
        using var response = await http.PostAsync(path, new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"));
        return ((int)response.StatusCode, await ReadJson(response));
    }

    /// <summary>The value of an unlabelled series on the server's /metrics (0 when it was not exported yet).</summary>
    public static async Task<double> MetricAsync(this HttpClient http, string name)
    {
        var text = await http.GetStringAsync("metrics");
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(name + " "));
        return line is null ? 0 : double.Parse(line[(name.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    public static async Task<(int Status, JsonNode? Body)> PostRawAsync(this HttpClient http, string path, byte[] body)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/json");
        using var response = await http.PostAsync(path, content);
        return ((int)response.StatusCode, await ReadJson(response));
    }

    public static async Task<(int Status, JsonNode? Body)> GetJsonAsync(this HttpClient http, string path)
    {
        using var response = await http.GetAsync(path);
        return ((int)response.StatusCode, await ReadJson(response));
    }

    static async Task<JsonNode?> ReadJson(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        try { return JsonNode.Parse(text); }
        catch (JsonException) { return JsonValue.Create(text); }
    }
}
