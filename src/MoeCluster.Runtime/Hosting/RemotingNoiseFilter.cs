using Akka.Event;

namespace MoeCluster.Runtime.Hosting;

/// <summary>
/// Drops the two log lines Akka.Remote writes, with a stack trace each, whenever a peer closes its connection: an
/// ERROR "Disassociated" from the endpoint writer and the WARNING "Association with remote system … has failed;
/// address is now gated" that quotes the same exception. Every graceful leave and every clean stop produces them, so
/// they teach operators to ignore ERROR lines. Nothing is lost: a peer that really fails is reported by the cluster
/// (UNREACHABLE, downing, removal) and by the gateway's recovery lines; other remoting errors still log.
/// </summary>
public sealed class RemotingNoiseFilter : LogFilterBase
{
    const string Disassociated = "EndpointDisassociatedException";

    public override LogFilterType FilterType => LogFilterType.Content;

    public override LogFilterDecision ShouldKeepMessage(LogEvent content, string? expandedMessage = null)
    {
        if (content is Error { Cause: { } cause } && cause.GetType().Name == Disassociated) return LogFilterDecision.Drop;
        if (content is Warning && (expandedMessage ?? content.Message?.ToString() ?? "").Contains(Disassociated, StringComparison.Ordinal))
            return LogFilterDecision.Drop;
        return LogFilterDecision.NoDecision;
    }
}
