using MoeCluster.Model.Generation;
using MoeCluster.Runtime.Protocol;

namespace MoeCluster.Runtime.Gateway;

/// <summary>
/// What a failed attempt of a step leads to: the gateway's retry policy, apart from the actor so it reads in one place.
/// <list type="bullet">
/// <item>While the cluster is changing (members unreachable, entities being started again) a timeout or unanswered
/// experts say nothing about the step: it is <see cref="Park"/>ed without counting an attempt.</item>
/// <item>Otherwise the attempt counts and the step is <see cref="Retry"/>ed from its first layer (KV-cache writes are
/// idempotent), up to <see cref="RuntimeOptions.MaxStepAttempts"/>.</item>
/// <item>Then only the sequences the failure concerns end with an error (<see cref="FailSequences"/>): those owning
/// the rows it names, or every sequence of the step when it names none. The others go on at the next step.</item>
/// </list>
/// </summary>
internal sealed class StepRecovery(int maxAttempts)
{
    public abstract record Decision;
    public sealed record Retry : Decision;
    public sealed record Park(string Reason) : Decision;
    public sealed record FailSequences(IReadOnlyList<string> RequestIds, string Error) : Decision;

    public Decision Decide(ActiveStep step, StepFailure failure, bool clusterChanging)
    {
        if (clusterChanging && failure.Cause != StepFailureCause.Fault) return new Park(failure.Reason);
        if (step.Attempt < maxAttempts)
        {
            step.CountFailedAttempt();
            return new Retry();
        }
        return new FailSequences(Affected(step.Plan, failure.Tokens), $"generation step failed after {step.Attempt} attempts: {failure.Reason}");
    }

    /// <summary>The requests owning <paramref name="tokens"/> (rows of the step's flat batch), or all of the step's.</summary>
    public static IReadOnlyList<string> Affected(StepPlan plan, IReadOnlyList<int>? tokens)
    {
        if (tokens is null || tokens.Count == 0) return plan.SegmentRequests.Distinct().ToList();
        var ends = plan.Layout.LastTokenIndices();   // segment i covers rows (ends[i-1], ends[i]]
        var affected = new HashSet<string>();
        foreach (var t in tokens)
        {
            int i = Array.BinarySearch(ends, (long)t);
            if (i < 0) i = ~i;
            if (i < ends.Length) affected.Add(plan.SegmentRequests[i]);
        }
        return affected.ToList();
    }
}
