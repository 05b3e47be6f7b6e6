using System.Diagnostics;
using MoeCluster.Model.Generation;

namespace MoeCluster.Runtime.Gateway;

/// <summary>One planned step and its attempts. Every attempt gets an id of its own, so answers to an abandoned attempt
/// (retried, parked, drained) are recognised as stale and released.</summary>
internal sealed class ActiveStep(StepPlan plan)
{
    public StepPlan Plan { get; } = plan;
    /// <summary>The id the running attempt's messages carry.</summary>
    public long AttemptId { get; private set; }
    /// <summary>Attempts counted so far (1 = the first); waits for the cluster to recover are not counted.</summary>
    public int Attempt { get; private set; } = 1;
    public Stopwatch Clock { get; } = Stopwatch.StartNew();
    /// <summary>The layer whose answer the running attempt waits for.</summary>
    public int Layer { get; set; }

    public void Begin(long attemptId)
    {
        AttemptId = attemptId;
        Layer = 0;
    }

    public void CountFailedAttempt() => Attempt++;
}
