using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using MoeCluster.Model.Tokenization;
using MoeCluster.Node.Chat;
using MoeCluster.Node.Jobs;
using MoeCluster.Runtime.Gateway;
using Prometheus;

namespace MoeCluster.Node.Http;

/// <summary>The two entry points the node host calls: register the serving services, then map every endpoint.</summary>
public static class ServingExtensions
{
    /// <summary>Registers the serving surface. The host registers <see cref="IGenerationService"/> and, when the
    /// checkpoint has one, <see cref="ModelTokenizer"/> (without it only token-id requests work).</summary>
    public static IServiceCollection AddMoeClusterServing(this IServiceCollection services, ServingOptions options)
    {
        services.AddMoeClusterNode(options);
        services.TryAddSingleton<INodeReadiness>(sp => new GenerationReadiness(sp.GetRequiredService<IGenerationService>()));
        // The host registers the renderer it built at start-up (see NodeHost); hosts that do not get the checkpoint's.
        services.TryAddSingleton(sp => ChatPromptRenderer.ForCheckpoint(sp.GetService<ModelTokenizer>()));
        services.AddSingleton(sp => new CompletionRunner(sp.GetRequiredService<IGenerationService>(), sp.GetService<ModelTokenizer>(),
            sp.GetRequiredService<ChatPromptRenderer>(), options));
        services.AddSingleton(new JobSlots(options.JobBatchShare, options.MaxBatchSize));
        services.AddSingleton(new UploadSlots(options.MaxConcurrentUploads));
        services.AddSingleton(_ => JobsHosting.Files(options));
        services.AddSingleton(_ => JobsHosting.StoreHealth(options));
        services.AddSingleton(sp => new LogprobShapes(sp.GetService<ModelTokenizer>()));
        services.AddSingleton<IJobLineRunner>(sp => new JobLineRunner(() => sp.GetRequiredService<CompletionRunner>(), () => sp.GetRequiredService<LogprobShapes>(),
            sp.GetRequiredService<JobSlots>(), options));
        return services;
    }

    /// <summary>What every node needs, whatever its roles: the options the API-key and error middleware read. The host
    /// registers <see cref="INodeReadiness"/> (or <see cref="AddMoeClusterServing"/> does, over the generation service).</summary>
    public static IServiceCollection AddMoeClusterNode(this IServiceCollection services, ServingOptions options)
    {
        services.TryAddSingleton(options);
        services.TryAddSingleton<NodeLifecycle>();
        return services;
    }

    /// <summary>What every node serves, whatever its roles: /healthz, /readyz, /metrics, and one API-key rule (everything
    /// under /v1 needs the key, /v1/cluster/* included; probes and /metrics stay open), with OpenAI-style errors.</summary>
    public static WebApplication MapMoeClusterNode(this WebApplication app)
    {
        app.UseMiddleware<HttpMetrics>();
        app.UseMiddleware<ApiErrorMiddleware>();
        app.UseMiddleware<ApiKeyMiddleware>();
        app.UseMiddleware<DrainingMiddleware>();
        HealthEndpoints.Map(app);
        app.MapMetrics("/metrics");
        app.Map("/v1/{**path}", context =>
            throw new ApiException(404, $"unknown endpoint {context.Request.Method} {context.Request.Path}", null, "unknown_url"));
        return app;
    }

    /// <summary>Maps /v1/completions, /v1/chat/completions, /v1/models, /v1/generate, /v1/jobs..., /healthz, /readyz and
    /// /metrics, behind request metrics, OpenAI-style errors and API keys (which guard /v1 only).</summary>
    public static WebApplication MapMoeClusterApi(this WebApplication app)
    {
        app.MapMoeClusterNode();
        app.UseMiddleware<JobStoreGate>();
        OpenAiEndpoints.Map(app);
        GenerateEndpoint.Map(app);
        TokenizeEndpoints.Map(app);
        JobsEndpoints.Map(app);
        Files.FilesEndpoints.Map(app);
        Jobs.BatchesEndpoints.Map(app);
        return app;
    }
}
