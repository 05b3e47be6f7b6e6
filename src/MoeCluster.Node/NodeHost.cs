using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Akka.Actor;
using Akka.Hosting;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.Model.Tokenization;
using MoeCluster.Runtime;
using MoeCluster.Runtime.Gateway;
using MoeCluster.Runtime.Hosting;
using MoeCluster.Node.Chat;
using MoeCluster.Node.Http;
using MoeCluster.Node.Jobs;

namespace MoeCluster.Node;

/// <summary>Builds the node process: ASP.NET Core for HTTP, Akka.Hosting for the cluster, and the services the HTTP
/// layer needs. Thin on purpose: the runtime's wiring lives in <see cref="MoeClusterHosting"/>.</summary>
public static class NodeHost
{
    public static WebApplication Build(ServeOptions o, Action<string>? log = null)
    {
        log ??= Console.Error.WriteLine;
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://{(o.HttpHost == "0.0.0.0" ? "*" : o.HttpHost)}:{o.HttpPort}");
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        var options = ModuleOptions.Parse(o.Runtime.DType, o.Runtime.Device);
        var model = new ModelSource(o.Runtime.ModelDirectory, options);
        log($"model {o.Runtime.ModelDirectory}: {model.Config.Architecture.HuggingFaceName()}, {model.Config.NumLayers} layers, {model.Config.NumExperts} experts (top-{model.Config.TopK}), {o.Runtime.DType} on {o.Runtime.Device}");
        builder.Services.AddSingleton(model);
        builder.Services.AddSingleton(model.Config);
        builder.Services.AddSingleton(Runtime.Experts.PlacementStrategy.From(o.Runtime, model.Config));
        // One tokenizer for the whole process, loaded (and its chat template compiled) before serving starts, so a
        // tokenizer or template we cannot run stops the node here with the reason instead of failing requests later.
        var tokenizer = ModelTokenizer.Load(o.Runtime.ModelDirectory);
        if (tokenizer is not null) builder.Services.AddSingleton(tokenizer);
        if (o.ServesApi)
        {
            var chat = ChatPromptRenderer.ForCheckpoint(tokenizer, o.ChatTemplate);
            if (!chat.HasTemplate) log($"chat: {o.Runtime.ModelDirectory} has no chat template; /v1/chat/completions answers 400 until one is given with --chat-template");
            builder.Services.AddSingleton(chat);
        }

        var serving = new ServingOptions
        {
            ModelName = ServingOptions.ModelNameFor(o.Runtime.ModelDirectory),
            ApiKeys = o.ApiKeys,
            DataDirectory = o.DataDirectory ?? Path.Combine(Environment.CurrentDirectory, "data"),
            JournalConnectionString = o.JournalConnectionString,
            ContextLength = o.Runtime.Batching.ContextLength,
            MaxBatchSize = o.Runtime.Batching.MaxBatchSize,
            Retention = o.JobRetention,
            JobBatchShare = o.JobBatchShare,
            MaxConcurrentUploads = o.MaxConcurrentUploads,
            DType = o.Runtime.DType,
        };
        builder.Services.AddMoeClusterNode(serving);
        if (o.ServesApi) builder.Services.AddMoeClusterServing(serving);

        if (o.Engine == "local")
        {
            builder.Services.AddSingleton<IGenerationService>(_ =>
            {
                log("loading the whole model into this process (--engine local)…");
                return new LocalGenerationService(MoeTransformer.Load(o.Runtime.ModelDirectory, options, o.Runtime.Batching.ContextLength), o.Runtime.Batching);
            });
            builder.Services.AddAkka(ClusterNodeOptions.ActorSystemName, b => b.AddMoeClusterJobs(serving));
        }
        else
        {
            builder.Services.AddAkka(ClusterNodeOptions.ActorSystemName, b =>
            {
                b.AddMoeClusterRuntime(o.Cluster, o.Runtime, model);
                if (o.ServesApi) b.AddMoeClusterJobs(serving, cluster: true);
            });
            bool gateway = o.Runtime.Roles.Contains(NodeRoles.Gateway);
            if (gateway)
                builder.Services.AddSingleton<IGenerationService>(sp =>
                    new ClusterGenerationService(sp.GetRequiredService<ActorSystem>(), sp.GetRequiredService<ActorRegistry>().Get<GatewayKey>(), model.Config, o.Runtime.RequestTimeout));
            builder.Services.AddSingleton<INodeReadiness>(sp => new ClusterNodeReadiness(sp.GetRequiredService<ActorSystem>(), o.Runtime.Roles,
                () => gateway ? sp.GetRequiredService<IGenerationService>() : null));
        }

        // Room for the drain below plus Kestrel's own wait for in-flight requests.
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = o.DrainGrace + TimeSpan.FromSeconds(15));
        var app = builder.Build();
        if (o.ServesApi) app.MapMoeClusterApi();
        else app.MapMoeClusterNode();
        app.MapClusterEndpoints();
        app.Lifetime.ApplicationStopping.Register(() => Drain(app, o, log));
        app.Lifetime.ApplicationStopped.Register(model.Dispose);
        return app;
    }

    /// <summary>SIGTERM: before Kestrel stops and before the actor system's coordinated shutdown (which hands this
    /// node's experts and jobs off and leaves the cluster), the node turns not-ready, refuses new /v1 requests with 503,
    /// and a gateway drains: queued requests are answered with an error, running ones get the grace to finish. Blocks
    /// the stopping callback on purpose — it orders the shutdown so that job lines finishing now are still persisted
    /// by their job entities, before the shards move.</summary>
    static void Drain(WebApplication app, ServeOptions o, Action<string> log)
    {
        app.Services.GetRequiredService<NodeLifecycle>().StartDraining();
        if (o.Engine != "cluster" || !o.Runtime.Roles.Contains(NodeRoles.Gateway)) return;
        // Downed by the split-brain resolver, the actor system stops first and the host follows: the gateway is gone
        // with it (its requests already ended with an error), so waiting for its drain would only delay the exit.
        if (app.Services.GetRequiredService<ActorSystem>().WhenTerminated.IsCompleted)
        {
            log("the actor system has already stopped (this node left the cluster or was downed): nothing to drain");
            return;
        }
        var registry = app.Services.GetRequiredService<ActorRegistry>();
        if (!registry.TryGet<GatewayKey>(out var gateway)) return;
        try
        {
            var drained = gateway.Ask<GatewayDrained>(new DrainGateway(o.DrainGrace), o.DrainGrace + TimeSpan.FromSeconds(10)).GetAwaiter().GetResult();
            log($"gateway drained: {drained.Finished} sequences finished, {drained.Failed} requests answered with an error, {drained.Refused} requests that had streamed nothing handed back to be resent elsewhere");
        }
        catch (AskTimeoutException) { log("the gateway did not report drained in time; shutting down anyway"); }
    }
}
