namespace MoeCluster.Placement.Tests;

public class SlidingLoadWindowTests
{
    private static readonly ExpertId A = new(0, 0);
    private static readonly ExpertId B = new(0, 1);

    private static Dictionary<ExpertId, long> Counts(long a, long b) => new() { [A] = a, [B] = b };

    [Fact]
    public void Snapshot_sums_the_recorded_steps()
    {
        var window = new SlidingLoadWindow(10);
        window.Record(0, Counts(1, 2));
        window.Record(1, Counts(3, 4));

        var snapshot = window.Snapshot();

        Assert.Equal((4L, 6L, 2, 1L), (snapshot.TokensOf(A), snapshot.TokensOf(B), snapshot.Steps, snapshot.LastStep));
    }

    [Fact]
    public void Steps_older_than_the_window_are_dropped()
    {
        var window = new SlidingLoadWindow(3);
        for (var step = 0; step < 5; step++)
            window.Record(step, Counts(1L << step, 0));

        var snapshot = window.Snapshot();

        Assert.Equal(4 + 8 + 16, snapshot.TokensOf(A)); // steps 2, 3, 4
        Assert.Equal((3, 4L), (snapshot.Steps, snapshot.LastStep));
    }

    [Fact]
    public void A_gap_longer_than_the_window_leaves_only_the_newest_step()
    {
        var window = new SlidingLoadWindow(5);
        window.Record(0, Counts(100, 100));
        window.Record(10, Counts(1, 0));

        var snapshot = window.Snapshot();

        Assert.Equal((1L, 0L, 1), (snapshot.TokensOf(A), snapshot.TokensOf(B), snapshot.Steps));
    }

    [Fact]
    public void Recording_the_same_step_twice_adds_to_it()
    {
        var window = new SlidingLoadWindow(2);
        window.Record(7, Counts(1, 1));
        window.Record(7, Counts(2, 0));

        Assert.Equal(3, window.Snapshot().TokensOf(A));
        window.Record(9, Counts(0, 0));
        Assert.Equal(0, window.Snapshot().TokensOf(A)); // step 7 left as a whole
    }

    [Fact]
    public void An_expert_seen_only_in_dropped_steps_disappears_but_one_recorded_with_zero_stays()
    {
        var window = new SlidingLoadWindow(1);
        window.Record(0, new Dictionary<ExpertId, long> { [A] = 5 });
        window.Record(1, new Dictionary<ExpertId, long> { [B] = 0 });

        var tokens = window.Snapshot().Tokens;

        Assert.False(tokens.ContainsKey(A));
        Assert.Equal(0, tokens[B]);
    }

    [Fact]
    public void Steps_going_backwards_are_rejected()
    {
        var window = new SlidingLoadWindow(4);
        window.Record(5, Counts(1, 1));

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => window.Record(4, Counts(1, 1)));
        Assert.Contains("older than the newest recorded step 5", error.Message);
    }

    [Fact]
    public void An_empty_window_snapshots_as_empty() =>
        Assert.Equal(LoadWindow.Empty, new SlidingLoadWindow(4).Snapshot());
}
