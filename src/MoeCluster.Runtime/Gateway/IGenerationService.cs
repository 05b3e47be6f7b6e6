using MoeCluster.Model;
using MoeCluster.Model.Generation;

namespace MoeCluster.Runtime.Gateway;

/// <summary>The gateway as the HTTP layer and the CLI see it: submit a request, stream its events. Implemented by the
/// cluster gateway (<see cref="ClusterGenerationService"/>) and by the single-process engine
/// (<see cref="LocalGenerationService"/>), so the serving surface never touches tensors or actors.</summary>
public interface IGenerationService
{
    ModelConfig Config { get; }

    /// <summary>Streams <see cref="TokenGenerated"/> (and <see cref="PromptLogits"/> when asked) events and ends with
    /// exactly one <see cref="SequenceFinished"/>. Cancelling <paramref name="cancellation"/> cancels the request and
    /// frees its KV-cache slot. Throws <see cref="InvalidGenerationRequestException"/> for a request that can never run
    /// <see cref="GatewayOverloadedException"/> when the queue is full and <see cref="GatewayUnavailableException"/> when the
    /// gateway is draining.</summary>
    IAsyncEnumerable<GenerationEvent> GenerateAsync(GenerationRequest request, CancellationToken cancellation = default);

    /// <summary>Queue depth, running sequences, readiness.</summary>
    Task<GatewayStatus> GetStatusAsync(CancellationToken cancellation = default);
}

public sealed record GatewayStatus(bool Ready, int Waiting, int Running, long CachedTokens, long KvCacheBytesInUse, string Detail);

/// <summary>The bounded queue is full: the client should retry later (HTTP 429 / 503).</summary>
public sealed class GatewayOverloadedException(string message) : Exception(message);

/// <summary>The gateway takes no requests now (it is draining for a shutdown): the client should send the request to
/// another gateway node (HTTP 503).</summary>
public sealed class GatewayUnavailableException(string message) : Exception(message);
