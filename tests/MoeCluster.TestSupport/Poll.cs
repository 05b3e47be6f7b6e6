namespace MoeCluster.TestSupport;

/// <summary>Waits for a condition by polling with a deadline (instead of sleeping a guessed time). The one polling helper
/// of the test projects: every wait for something asynchronous to become true goes through here.</summary>
public static class Poll
{
    /// <summary>Probes until <paramref name="condition"/> holds for the probed value and returns that value; the timeout
    /// message names what was awaited and the last value seen.</summary>
    public static async Task<T> UntilAsync<T>(Func<Task<T>> probe, Func<T, bool> condition, TimeSpan? timeout = null, string? what = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        var deadline = DateTime.UtcNow + limit;
        while (true)
        {
            var last = await probe();
            if (condition(last)) return last;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{what ?? "condition"} not met within {limit.TotalSeconds:0} s; last value: {last}");
            await Task.Delay(50);
        }
    }

    public static Task UntilAsync(Func<Task<bool>> condition, TimeSpan? timeout = null, string? what = null) =>
        UntilAsync(condition, met => met, timeout, what);

    public static Task UntilAsync(Func<bool> condition, TimeSpan? timeout = null, string? what = null) =>
        UntilAsync(() => Task.FromResult(condition()), timeout, what);
}
