namespace MoeCluster.Runtime.Protocol;

/// <summary>Why an attempt of a step failed. The gateway's step recovery decides from the cause, never from the text.</summary>
public enum StepFailureCause
{
    /// <summary>An actor on the token path threw (out of memory on a long prefill, a bug) or refused a malformed
    /// message, and answered with a failure at once.</summary>
    Fault,
    /// <summary>Experts did not answer within the expert timeout, even through the shard region.</summary>
    ExpertsUnanswered,
    /// <summary>The step did not finish within the step timeout.</summary>
    Timeout,
}

/// <summary>A failed attempt: its cause, a message a user can act on, and the rows of the step's flat token batch the
/// failure concerns (null: the whole step), so that only the sequences owning them fail once retries are spent.</summary>
public sealed record StepFailure(StepFailureCause Cause, string Reason, IReadOnlyList<int>? Tokens = null);
