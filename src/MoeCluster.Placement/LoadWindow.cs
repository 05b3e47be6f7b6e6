using System.Collections.Immutable;

namespace MoeCluster.Placement;

/// <summary>
/// Tokens routed to each logical expert, summed over a window of <see cref="Steps"/> forward steps ending at
/// <see cref="LastStep"/>. Immutable. Experts absent from <see cref="Tokens"/> received no token.
/// </summary>
public sealed record LoadWindow
{
    private readonly ImmutableSortedDictionary<ExpertId, long> _tokens;

    /// <summary>Creates a window from token counts per expert.</summary>
    /// <param name="tokens">Tokens per expert over the window; no count may be negative.</param>
    /// <param name="steps">How many steps the window covers (for messages; 0 when nothing was recorded).</param>
    /// <param name="lastStep">The newest step in the window; replication measures time between changes in steps.</param>
    /// <exception cref="ArgumentOutOfRangeException">A count or <paramref name="steps"/> is negative.</exception>
    public LoadWindow(IReadOnlyDictionary<ExpertId, long> tokens, int steps, long lastStep)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentOutOfRangeException.ThrowIfNegative(steps);
        foreach (var (expert, count) in tokens)
            if (count < 0)
                throw new ArgumentOutOfRangeException(nameof(tokens), count, $"Expert {expert} has a negative token count ({count}) in the load window.");
        _tokens = tokens.ToImmutableSortedDictionary();
        Steps = steps;
        LastStep = lastStep;
    }

    /// <summary>A window with no tokens and no steps.</summary>
    public static LoadWindow Empty { get; } = new(ImmutableDictionary<ExpertId, long>.Empty, 0, -1);

    /// <summary>Tokens per expert over the window, in expert order.</summary>
    public IReadOnlyDictionary<ExpertId, long> Tokens => _tokens;

    /// <summary>How many steps the window covers.</summary>
    public int Steps { get; }

    /// <summary>The newest step in the window (-1 when empty).</summary>
    public long LastStep { get; }

    /// <summary>Tokens routed to all experts over the window.</summary>
    public long TotalTokens => _tokens.Values.Sum();

    /// <summary>The layers with any expert in the window, in order.</summary>
    public IReadOnlyList<int> Layers => _tokens.Keys.Select(e => e.Layer).Distinct().ToList();

    /// <summary>Tokens routed to <paramref name="expert"/> (0 when absent).</summary>
    public long TokensOf(ExpertId expert) => _tokens.GetValueOrDefault(expert);

    /// <summary>Tokens routed to all experts of <paramref name="layer"/>.</summary>
    public long TokensOfLayer(int layer) => _tokens.Where(kv => kv.Key.Layer == layer).Sum(kv => kv.Value);

    /// <inheritdoc/>
    public bool Equals(LoadWindow? other) =>
        other is not null && Steps == other.Steps && LastStep == other.LastStep
        && _tokens.Count == other._tokens.Count
        && _tokens.All(kv => other._tokens.TryGetValue(kv.Key, out var count) && count == kv.Value);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Steps, LastStep, _tokens.Count, TotalTokens);
}
