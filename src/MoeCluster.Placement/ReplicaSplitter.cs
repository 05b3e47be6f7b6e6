namespace MoeCluster.Placement;

/// <summary>A contiguous range of an expert's tokens, [<paramref name="Start"/>, Start + Count), sent to one replica.</summary>
public sealed record ReplicaShare(int Replica, string Node, int Start, int Count);

/// <summary>
/// Splits the tokens routed to one expert over its replicas: contiguous, as even as possible, deterministic. The first
/// (tokens mod replicas) replicas, primary first, take one token more, so every router splits a batch identically.
/// </summary>
public static class ReplicaSplitter
{
    /// <summary>One share per replica, in replica order; a share may be empty when there are fewer tokens than replicas.</summary>
    /// <exception cref="ArgumentException"><paramref name="tokens"/> is negative or <paramref name="replicas"/> is empty.</exception>
    public static IReadOnlyList<ReplicaShare> Split(int tokens, IReadOnlyList<string> replicas)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        ArgumentNullException.ThrowIfNull(replicas);
        if (replicas.Count == 0)
            throw new ArgumentException("An expert needs at least one replica to receive its tokens; the replica list is empty.", nameof(replicas));
        var shares = new ReplicaShare[replicas.Count];
        var start = 0;
        for (var i = 0; i < replicas.Count; i++)
        {
            var count = CountFor(tokens, replicas.Count, i);
            shares[i] = new ReplicaShare(i, replicas[i], start, count);
            start += count;
        }
        return shares;
    }

    /// <summary>The replica index that receives token <paramref name="token"/> of <paramref name="tokens"/> (the inverse of <see cref="Split"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="token"/> is outside [0, tokens) or <paramref name="replicaCount"/> is below 1.</exception>
    public static int ReplicaOf(int token, int tokens, int replicaCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(replicaCount, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(token);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(token, tokens);
        var size = tokens / replicaCount;
        var bigger = tokens % replicaCount; // the first `bigger` replicas hold size + 1 tokens
        var inBigger = bigger * (size + 1);
        return token < inBigger ? token / (size + 1) : bigger + (token - inBigger) / size;
    }

    private static int CountFor(int tokens, int replicaCount, int replica) =>
        tokens / replicaCount + (replica < tokens % replicaCount ? 1 : 0);
}
