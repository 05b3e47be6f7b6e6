using MoeCluster.TestSupport;
using System.Net.Http.Json;
using MoeCluster.Node.Tests.Support;

namespace MoeCluster.Node.Tests;

/// <summary>Work nobody will read is cancelled at the gateway (which frees its KV-cache slot), not generated to the end;
/// work that ends normally is not cancelled afterwards.</summary>
[Collection(ServingCollection.Name)]
public sealed class CancellationSpec(ServingFixture f)
{
    [Fact]
    public async Task A_client_disconnecting_mid_stream_cancels_its_request_at_the_gateway()
    {
        RecordingGateway recorder = null!;
        // 120 tokens delivered 20 ms apart: the stream lasts seconds, so the disconnect lands mid-stream.
        await using var host = await ServingHost.StartAsync(f.Model, wrap: inner => recorder = new RecordingGateway(inner, TimeSpan.FromMilliseconds(20)));
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
        {
            Content = JsonContent.Create(new { model = host.Options.ModelName, prompt = "Hello", max_tokens = 120, ignore_eos = true, stream = true }),
        };
        using (var response = await host.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            Assert.StartsWith("data: ", await reader.ReadLineAsync());
        } // disposing the response mid-stream closes the connection

        var outcomes = await Poll.UntilAsync(() => Task.FromResult(recorder.Outcomes.Values.ToArray()), a => a.Length == 1, TimeSpan.FromSeconds(30), "the request to end");
        Assert.Equal("cancelled", outcomes[0]);
        await Poll.UntilAsync(() => host.Http.GetJsonAsync("readyz"), s => (int)s.Body!["running"]! == 0, TimeSpan.FromSeconds(30), "the gateway to have no running sequence");
    }

    [Fact]
    public async Task Hitting_a_stop_string_cancels_the_rest_of_the_generation_and_a_normal_finish_cancels_nothing()
    {
        RecordingGateway recorder = null!;
        await using var host = await ServingHost.StartAsync(f.Model, wrap: inner => recorder = new RecordingGateway(inner));
        var (_, free) = await host.Http.PostJsonAsync("v1/completions", new { model = host.Options.ModelName, prompt = "Hello", max_tokens = 40, temperature = 0, ignore_eos = true });
        string text = (string)free!["choices"]![0]!["text"]!;
        Assert.Equal("length", Assert.Single(recorder.Outcomes.Values));

        var (status, body) = await host.Http.PostJsonAsync("v1/completions",
            new { model = host.Options.ModelName, prompt = "Hello", max_tokens = 40, temperature = 0, ignore_eos = true, stop = text.Substring(2, 2) });
        Assert.Equal(200, status);
        Assert.Equal("stop", (string)body!["choices"]![0]!["finish_reason"]!);
        Assert.True((int)body["usage"]!["completion_tokens"]! < 40);
        var outcomes = await Poll.UntilAsync(() => Task.FromResult(recorder.Outcomes.Values.ToArray()), a => a.Length == 2, TimeSpan.FromSeconds(30), "both requests to end");
        Assert.Equal(["cancelled", "length"], outcomes.Order().ToArray());
    }
}
