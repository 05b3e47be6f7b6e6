using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Runtime.Gateway;

namespace MoeCluster.Node.Tests.Support;

/// <summary>The real service, except that it refuses every request as overloaded (the bounded queue is full).</summary>
public sealed class OverloadedGateway(IGenerationService inner) : IGenerationService
{
    public ModelConfig Config => inner.Config;

    public async IAsyncEnumerable<GenerationEvent> GenerateAsync(GenerationRequest request, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellation = default)
    {
        await Task.Yield();
        throw new GatewayOverloadedException("queue full (64 waiting)");
#pragma warning disable CS0162 // an iterator needs a yield
        yield break;
#pragma warning restore CS0162
    }

    public Task<GatewayStatus> GetStatusAsync(CancellationToken cancellation = default) => inner.GetStatusAsync(cancellation);
}

/// <summary>The real service reporting that the cluster is not ready (e.g. experts not yet placed).</summary>
public sealed class NotReadyGateway(IGenerationService inner) : IGenerationService
{
    public ModelConfig Config => inner.Config;
    public IAsyncEnumerable<GenerationEvent> GenerateAsync(GenerationRequest request, CancellationToken cancellation = default) => inner.GenerateAsync(request, cancellation);
    public Task<GatewayStatus> GetStatusAsync(CancellationToken cancellation = default) =>
        Task.FromResult(new GatewayStatus(false, 0, 0, 0, 0, "3 of 8 experts placed"));
}

/// <summary>The real service, recording how each request ended for its caller: the gateway's finish reason, or
/// "cancelled" when the caller cancelled first. <paramref name="eventDelay"/> slows delivery, standing in for a
/// long generation.</summary>
public sealed class RecordingGateway(IGenerationService inner, TimeSpan eventDelay = default) : IGenerationService
{
    public System.Collections.Concurrent.ConcurrentDictionary<string, string> Outcomes { get; } = new();
    public ModelConfig Config => inner.Config;

    public async IAsyncEnumerable<GenerationEvent> GenerateAsync(GenerationRequest request, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellation = default)
    {
        using var registration = cancellation.Register(() => Outcomes.TryAdd(request.Id, "cancelled"));
        await foreach (var e in inner.GenerateAsync(request, cancellation))
        {
            if (eventDelay > TimeSpan.Zero) await Task.Delay(eventDelay, CancellationToken.None);
            if (e is SequenceFinished f) Outcomes.TryAdd(request.Id, f.Reason.ToString().ToLowerInvariant());
            yield return e;
        }
    }

    public Task<GatewayStatus> GetStatusAsync(CancellationToken cancellation = default) => inner.GetStatusAsync(cancellation);
}
