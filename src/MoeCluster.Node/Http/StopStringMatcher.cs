namespace MoeCluster.Node.Http;

/// <summary>Finds OpenAI <c>stop</c> strings in streamed text. Text that could still be the start of a stop string is
/// held back, so a stream never shows a stop string (or part of one) that the final text would not contain.</summary>
public sealed class StopStringMatcher(IReadOnlyList<string> stops)
{
    string pending = "";

    /// <summary>Adds decoded text; returns the text safe to emit now and whether a stop string was completed (the text
    /// before it is emitted, the stop string and everything after are dropped).</summary>
    public (string Emit, bool Stopped) Push(string text)
    {
        if (stops.Count == 0) return (text, false);
        pending += text;
        int earliest = -1;
        foreach (var stop in stops)
        {
            int at = pending.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (earliest < 0 || at < earliest)) earliest = at;
        }
        if (earliest >= 0)
        {
            var before = pending[..earliest];
            pending = "";
            return (before, true);
        }
        int hold = HeldBack();
        var emit = pending[..^hold];
        pending = pending[^hold..];
        return (emit, false);
    }

    /// <summary>The end of the stream: whatever was held back is plain text after all.</summary>
    public string Flush()
    {
        var rest = pending;
        pending = "";
        return rest;
    }

    /// <summary>Length of the longest suffix of the pending text that is a proper prefix of some stop string.</summary>
    int HeldBack()
    {
        int best = 0;
        foreach (var stop in stops)
            for (int k = Math.Min(stop.Length - 1, pending.Length); k > best; k--)
                if (pending.AsSpan(pending.Length - k).SequenceEqual(stop.AsSpan(0, k))) { best = k; break; }
        return best;
    }
}
