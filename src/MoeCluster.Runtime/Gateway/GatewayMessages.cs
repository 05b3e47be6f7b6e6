using MoeCluster.Model.Generation;

namespace MoeCluster.Runtime.Gateway;

/// <summary>Client → gateway: generate. The sender receives <see cref="GenerationAccepted"/> or
/// <see cref="GenerationRejected"/>, then the request's events (<see cref="TokenGenerated"/>, …, one
/// <see cref="SequenceFinished"/>). A request that has streamed nothing when the gateway drains or stops gets a
/// <see cref="RejectionKind.Draining"/> rejection after its acceptance instead, before any event.</summary>
public sealed record SubmitGeneration(GenerationRequest Request);
public sealed record GenerationAccepted(string RequestId);
public enum RejectionKind { Overloaded, Invalid, Draining }
public sealed record GenerationRejected(string RequestId, RejectionKind Kind, string Field, string Message);
public sealed record CancelGeneration(string RequestId);
public sealed record GetGatewayStatus;

/// <summary>Shutting down a gateway (SIGTERM of its node): it stops admitting at once (new submissions are rejected with
/// <see cref="RejectionKind.Draining"/>), refuses the queued requests the same way after the fact (a preempted one that
/// already streamed tokens gets an error instead), lets the running sequences finish within <c>Grace</c>, then ends
/// those still running (an error if they streamed, the same refusal if not), and replies <see cref="GatewayDrained"/>
/// to the sender. A drained gateway stays closed.</summary>
public sealed record DrainGateway(TimeSpan Grace);
/// <param name="Finished">running sequences that finished within the grace</param>
/// <param name="Failed">requests that had streamed and were answered with an error</param>
/// <param name="Refused">requests that had streamed nothing, handed back with <see cref="RejectionKind.Draining"/> to be resent elsewhere</param>
public sealed record GatewayDrained(int Finished, int Failed, int Refused);
