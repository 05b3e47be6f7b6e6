using MoeCluster.Model.Generation;
using MoeCluster.Runtime.Gateway;

namespace MoeCluster.TestSupport;

public static class GenerationServiceExtensions
{
    /// <summary>Runs one request to its end and returns the finish event.</summary>
    public static async Task<SequenceFinished> GenerateToEndAsync(this IGenerationService service, GenerationRequest request, CancellationToken ct = default)
    {
        await foreach (var e in service.GenerateAsync(request, ct))
            if (e is SequenceFinished f) return f;
        throw new InvalidOperationException($"request {request.Id} ended without a SequenceFinished event");
    }
}
