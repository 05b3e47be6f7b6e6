namespace MoeCluster.Placement;

/// <summary>
/// Records tokens routed per expert at each step and keeps the last <see cref="WindowSteps"/> steps, as vLLM's EPLB
/// state keeps its load window (1,000 steps there).
/// </summary>
/// <remarks>
/// Mutable and not thread-safe: one owner (the placement coordinator actor) records and snapshots. Steps must not go
/// backwards; recording the same step twice adds to it (several micro-batches in one step). The window is the steps
/// in (newest − W, newest]; steps never recorded count as zero.
/// </remarks>
public sealed class SlidingLoadWindow
{
    private readonly Queue<(long Step, Dictionary<ExpertId, long> Counts)> _steps = new();
    private readonly Dictionary<ExpertId, long> _totals = [];
    private readonly Dictionary<ExpertId, int> _stepsMentioning = [];
    private Dictionary<ExpertId, long> _newest = [];

    /// <summary>Creates an empty window of <paramref name="windowSteps"/> steps.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="windowSteps"/> is below 1.</exception>
    public SlidingLoadWindow(int windowSteps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(windowSteps, 1);
        WindowSteps = windowSteps;
    }

    /// <summary>How many steps the window keeps (W).</summary>
    public int WindowSteps { get; }

    /// <summary>The newest step recorded, or -1 before the first.</summary>
    public long LastStep { get; private set; } = -1;

    /// <summary>Adds the tokens routed per expert at <paramref name="step"/> and drops steps older than the window.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="step"/> is older than the newest step, or a count is negative.</exception>
    public void Record(long step, IReadOnlyDictionary<ExpertId, long> counts)
    {
        ArgumentNullException.ThrowIfNull(counts);
        if (step < LastStep)
            throw new ArgumentOutOfRangeException(nameof(step), step, $"Step {step} is older than the newest recorded step {LastStep}; record steps in order.");
        foreach (var (expert, count) in counts)
            if (count < 0)
                throw new ArgumentOutOfRangeException(nameof(counts), count, $"Expert {expert} has a negative token count ({count}) at step {step}.");

        if (step != LastStep || _steps.Count == 0)
        {
            _newest = [];
            _steps.Enqueue((step, _newest));
        }
        LastStep = step;
        foreach (var (expert, count) in counts)
        {
            if (_newest.TryAdd(expert, count))
                _stepsMentioning[expert] = _stepsMentioning.GetValueOrDefault(expert) + 1;
            else
                _newest[expert] += count;
            _totals[expert] = _totals.GetValueOrDefault(expert) + count;
        }

        while (_steps.Peek().Step <= LastStep - WindowSteps)
            Drop(_steps.Dequeue().Counts);
    }

    /// <summary>The tokens per expert over the steps now in the window.</summary>
    public LoadWindow Snapshot()
    {
        if (_steps.Count == 0)
            return LoadWindow.Empty;
        var first = _steps.Peek().Step;
        return new LoadWindow(new Dictionary<ExpertId, long>(_totals), (int)(LastStep - first + 1), LastStep);
    }

    private void Drop(Dictionary<ExpertId, long> counts)
    {
        foreach (var (expert, count) in counts)
        {
            // Forget an expert once no kept step mentions it; one recorded with 0 tokens stays (it counts in means).
            if (--_stepsMentioning[expert] == 0)
            {
                _stepsMentioning.Remove(expert);
                _totals.Remove(expert);
            }
            else
            {
                _totals[expert] -= count;
            }
        }
    }
}
