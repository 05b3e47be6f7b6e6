using MoeCluster.Runtime.Protocol;

namespace MoeCluster.Runtime.Routing;

/// <summary>Gateway → its router of one layer (a local child: these never cross nodes): compute
/// Output = Residual + FFN(Normed) for one step.</summary>
public sealed record FeedForwardStep(long StepId, TensorPayload Residual, TensorPayload Normed);
public sealed record FeedForwardComputed(long StepId, int Layer, TensorPayload Output);
/// <summary>Router → gateway, instead of <see cref="FeedForwardComputed"/>, as soon as the layer cannot finish.</summary>
public sealed record FeedForwardFailed(long StepId, StepFailure Failure);

/// <summary>Tokens routed per expert over the router's window, for placement decisions and metrics; also the counts
/// since the router started (<c>CumulativeTokens</c>, <c>TotalSteps</c>), from which the replication coordinator
/// takes the increments between two polls.</summary>
public sealed record GetExpertLoad;
public sealed record ExpertLoad(int Layer, long[] TokensPerExpert, int Steps, long[]? CumulativeTokens = null, long TotalSteps = 0);
