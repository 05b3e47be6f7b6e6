using System.Net.Http.Headers;
using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using MoeCluster.Model.Tokenization;
using MoeCluster.Node.Http;
using MoeCluster.Node.Jobs;
using MoeCluster.Runtime.Gateway;

namespace MoeCluster.Node.Tests.Support;

/// <summary>The real serving stack on Kestrel at a free loopback port: LocalGenerationService over the tiny checkpoint,
/// AddMoeClusterServing + MapMoeClusterApi, and an ActorSystem with AddMoeClusterJobs (SQLite under the data dir).</summary>
public sealed class ServingHost : IAsyncDisposable
{
    readonly WebApplication app;
    readonly IGenerationService generation;

    public Uri BaseAddress { get; }
    public HttpClient Http { get; }
    public ServingOptions Options { get; }

    ServingHost(WebApplication app, IGenerationService generation, ServingOptions options)
    {
        this.app = app;
        this.generation = generation;
        Options = options;
        BaseAddress = new Uri(app.Urls.First(u => u.StartsWith("http://127.0.0.1")) + "/");
        Http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(120) };
        if (options.ApiKeys.Count > 0) Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", options.ApiKeys[0]);
    }

    /// <summary>Starts a host. <paramref name="wrap"/> may put a test double around the real service (overload, readiness).</summary>
    public static async Task<ServingHost> StartAsync(TinyServingModel model, ServingOptions? options = null,
        Func<IGenerationService, IGenerationService>? wrap = null, ModelTokenizer? tokenizer = null, bool withTokenizer = true)
    {
        options ??= new ServingOptions();
        options = options with
        {
            ModelName = options.ModelName == new ServingOptions().ModelName ? model.Name : options.ModelName,
            ContextLength = options.ContextLength ?? TinyServingModel.Batching.ContextLength,
            DataDirectory = options.DataDirectory == new ServingOptions().DataDirectory ? TempDirectory() : options.DataDirectory,
        };
        var local = new LocalGenerationService(model.Model, TinyServingModel.Batching);
        IGenerationService service = wrap is null ? local : wrap(local);

        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddSingleton(service);
        if (withTokenizer) builder.Services.AddSingleton(tokenizer ?? model.Tokenizer);
        builder.Services.AddMoeClusterServing(options);
        var serving = options;
        builder.Services.AddAkka("moecluster-test", (akka, _) => akka.AddMoeClusterJobs(serving));
        var app = builder.Build();
        app.MapMoeClusterApi();
        app.Lifetime.ApplicationStopped.Register(local.Dispose);
        await app.StartAsync();
        return new ServingHost(app, service, options);
    }

    public static string TempDirectory()
    {
        var dir = Path.Combine(Path.GetTempPath(), "moecluster-serving-tests", "data-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await app.StopAsync();
        await app.DisposeAsync();
        if (generation is IDisposable d and not LocalGenerationService) d.Dispose();
    }
}
