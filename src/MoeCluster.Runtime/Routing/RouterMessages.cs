using MoeCluster.Runtime.Protocol;

namespace MoeCluster.Runtime.Routing;

/// <summary>Gateway → its router of layer <c>Layer</c> (a local child: these never cross nodes): compute
/// Output = Residual + FFN(Normed) for one step.</summary>
public sealed record FeedForwardStep(long StepId, int Layer, TensorPayload Residual, TensorPayload Normed);
public sealed record FeedForwardComputed(long StepId, int Layer, TensorPayload Output);
public sealed record FeedForwardFailed(long StepId, int Layer, string Reason);

/// <summary>Tokens routed per expert over the router's window, for placement decisions and metrics; also the counts
/// since the router started (<c>CumulativeTokens</c>, <c>TotalSteps</c>), from which the replication coordinator
/// takes the increments between two polls.</summary>
public sealed record GetExpertLoad;
public sealed record ExpertLoad(int Layer, long[] TokensPerExpert, int Steps, long[]? CumulativeTokens = null, long TotalSteps = 0);
