namespace MoeCluster.Placement;

/// <summary>When <see cref="ReplicationPlanner"/> adds and retires redundant replicas. Defaults suit the demo cluster.</summary>
public sealed record ReplicationOptions
{
    /// <summary>Most replicas (primary included) of one expert; also capped by the number of nodes.</summary>
    public int MaxReplicasPerExpert { get; init; } = 3;

    /// <summary>
    /// Add replicas when an expert's tokens per replica exceed this multiple of the per-replica target (the layer's
    /// mean tokens per logical expert). Must be at least 1.
    /// </summary>
    public double AddThreshold { get; init; } = 1.5;

    /// <summary>
    /// Retire replicas when an expert's tokens per replica fall below this multiple of the per-replica target.
    /// Must be in (0, A/(A+1)] for <see cref="AddThreshold"/> A (0.6 for 1.5): an add leaves each replica more than
    /// A/(A+1) of the target, so a value in range never retires what was just added.
    /// </summary>
    public double RetireThreshold { get; init; } = 0.5;

    /// <summary>Steps that must pass after an expert's replicas change before they change again.</summary>
    public long MinStepsBetweenChanges { get; init; } = 200;

    /// <summary>No decision at all while the window holds fewer tokens than this (too little evidence), as SGLang's minimum utilisation.</summary>
    public long MinTokensInWindow { get; init; } = 1000;

    /// <summary>Checks the options are coherent.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is outside its documented range; the message names it.</exception>
    public void Validate()
    {
        if (MaxReplicasPerExpert < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxReplicasPerExpert), MaxReplicasPerExpert, "MaxReplicasPerExpert must be at least 1 (the primary).");
        if (!(AddThreshold >= 1.0) || double.IsInfinity(AddThreshold))
            throw new ArgumentOutOfRangeException(nameof(AddThreshold), AddThreshold, "AddThreshold must be a finite number >= 1 (a multiple of the per-replica target).");
        var highestRetire = AddThreshold / (AddThreshold + 1);
        if (!(RetireThreshold > 0.0 && RetireThreshold <= highestRetire))
            throw new ArgumentOutOfRangeException(nameof(RetireThreshold), RetireThreshold,
                $"RetireThreshold must be in (0, {highestRetire:0.###}] for AddThreshold {AddThreshold}; higher values could retire a replica right after adding it.");
        if (MinStepsBetweenChanges < 0)
            throw new ArgumentOutOfRangeException(nameof(MinStepsBetweenChanges), MinStepsBetweenChanges, "MinStepsBetweenChanges must be 0 or more.");
        if (MinTokensInWindow < 0)
            throw new ArgumentOutOfRangeException(nameof(MinTokensInWindow), MinTokensInWindow, "MinTokensInWindow must be 0 or more.");
    }
}
