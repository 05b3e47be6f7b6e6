using System.ClientModel;
using System.Net.Http.Headers;
using MoeCluster.Node.Http;
using MoeCluster.Node.Tests.Support;
using OpenAI;
using OpenAI.Chat;

namespace MoeCluster.Node.Tests;

public sealed class ApiKeySpec : IAsyncLifetime
{
    const string Key = "sk-moecluster-test-7f3a9c";
    const string OtherKey = "sk-second-key-for-rotation";
    TinyServingModel model = null!;
    ServingHost host = null!;

    public async Task InitializeAsync()
    {
        model = new TinyServingModel();
        host = await ServingHost.StartAsync(model, new ServingOptions { ApiKeys = [Key, OtherKey] });
    }

    public async Task DisposeAsync()
    {
        await host.DisposeAsync();
        model.Dispose();
    }

    HttpClient Client(string? bearer)
    {
        var http = new HttpClient { BaseAddress = host.BaseAddress };
        if (bearer is not null) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        return http;
    }

    object Body => new { model = model.Name, prompt = "Hello", max_tokens = 2 };

    [Fact]
    public async Task A_request_without_a_key_gets_401_with_an_openai_error()
    {
        using var http = Client(null);
        var (status, body) = await http.PostJsonAsync("v1/completions", Body);
        Assert.Equal(401, status);
        Assert.Equal("invalid_api_key", (string)body!["error"]!["code"]!);
        Assert.Equal("invalid_request_error", (string)body["error"]!["type"]!);
    }

    [Fact]
    public async Task A_wrong_key_gets_401_and_either_configured_key_is_accepted()
    {
        using (var wrong = Client(Key + "x"))
            Assert.Equal(401, (await wrong.PostJsonAsync("v1/completions", Body)).Status);
        using (var prefix = Client(Key[..^1]))
            Assert.Equal(401, (await prefix.GetJsonAsync("v1/models")).Status);
        using (var right = Client(Key))
            Assert.Equal(200, (await right.PostJsonAsync("v1/completions", Body)).Status);
        using (var second = Client(OtherKey))
            Assert.Equal(200, (await second.GetJsonAsync("v1/models")).Status);
    }

    [Fact]
    public async Task Probes_and_metrics_stay_open_and_the_keys_never_appear_in_metrics()
    {
        using var http = Client(null);
        Assert.Equal(200, (int)(await http.GetAsync("healthz")).StatusCode);
        Assert.Equal(200, (int)(await http.GetAsync("readyz")).StatusCode);
        using (var wrong = Client("sk-guess")) await wrong.GetAsync("v1/models");
        var metrics = await http.GetStringAsync("metrics");
        Assert.Contains("moecluster_http_requests_total", metrics);
        Assert.DoesNotContain(Key, metrics);
        Assert.DoesNotContain("sk-guess", metrics);
    }

    [Fact]
    public async Task The_official_client_with_a_wrong_key_gets_a_401_client_error()
    {
        var chat = new ChatClient(model.Name, new ApiKeyCredential("sk-wrong"), new OpenAIClientOptions { Endpoint = new Uri(host.BaseAddress, "v1") });
        var e = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync([new UserChatMessage("hi")]));
        Assert.Equal(401, e.Status);
        var ok = new ChatClient(model.Name, new ApiKeyCredential(Key), new OpenAIClientOptions { Endpoint = new Uri(host.BaseAddress, "v1") });
        ChatCompletion completion = await ok.CompleteChatAsync([new UserChatMessage("hi")], new ChatCompletionOptions { MaxOutputTokenCount = 2 });
        Assert.True(completion.Usage.InputTokenCount > 0);
    }
}
