using MoeCluster.Model.Generation;

namespace MoeCluster.Runtime.Gateway;

/// <summary>Client → gateway: generate. The sender receives <see cref="GenerationAccepted"/> or
/// <see cref="GenerationRejected"/>, then the request's events (<see cref="TokenGenerated"/>, …, one
/// <see cref="SequenceFinished"/>).</summary>
public sealed record SubmitGeneration(GenerationRequest Request);
public sealed record GenerationAccepted(string RequestId);
public enum RejectionKind { Overloaded, Invalid, NotReady }
public sealed record GenerationRejected(string RequestId, RejectionKind Kind, string Field, string Message);
public sealed record CancelGeneration(string RequestId);
public sealed record GetGatewayStatus;
