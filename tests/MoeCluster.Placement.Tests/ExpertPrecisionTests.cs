namespace MoeCluster.Placement.Tests;

public class ExpertPrecisionTests
{
    /// <summary>One layer of 8 experts with the given loads and largest output activations.</summary>
    static RoutingSnapshot Profile(long[] load, double[]? maxOutput = null, int layers = 1) => new()
    {
        Experts = 8, TopK = 2, Steps = 1,
        Layers = Enumerable.Range(0, layers).Select(l => new LayerRoutingStatistics
        {
            Layer = l, Tokens = load.Sum() / 2, MeanEntropy = 1, Load = load, Fluctuation = 0, Transitions = 0,
            Coactivation = Enumerable.Range(0, 8).Select(_ => (IReadOnlyList<long>)new long[8]).ToList(),
            MaxOutput = maxOutput,
        }).ToList(),
    };

    static readonly long[] Load = [80, 10, 50, 20, 70, 30, 60, 40];

    [Fact]
    public void Cold_picks_each_layer_s_least_loaded_experts_up_to_the_budget()
    {
        var chosen = ExpertPrecision.Int8Experts(Profile(Load, layers: 2), "cold", 0.5);
        Assert.Equal(8, chosen.Count);
        foreach (var layer in new[] { 0, 1 })
            Assert.Equal(new[] { 1, 3, 5, 7 }, chosen.Where(e => e.Layer == layer).Select(e => e.Expert).Order());
        Assert.Empty(ExpertPrecision.Int8Experts(Profile(Load), "none", 0.5));
        Assert.Equal(8, ExpertPrecision.Int8Experts(Profile(Load), "all", 0).Count);
    }

    [Fact]
    public void A_super_expert_is_never_int8_even_when_it_is_cold()
    {
        // Expert 1 is the coldest and has an output outlier 200 times the median expert's.
        double[] maxOutput = [2, 400, 1.5, 2.5, 1, 3, 2, 1.8];
        var profile = Profile(Load, maxOutput);
        Assert.Equal([new ExpertId(0, 1)], SuperExperts.Detect(profile));
        var cold = ExpertPrecision.Int8Experts(profile, "cold", 0.5);
        Assert.DoesNotContain(new ExpertId(0, 1), cold);
        Assert.Equal(4, cold.Count);                                    // the next coldest fills its place
        Assert.DoesNotContain(new ExpertId(0, 1), ExpertPrecision.Int8Experts(profile, "all", 1));
    }

    [Fact]
    public void Without_an_outlier_there_is_no_super_expert_however_few_experts_there_are()
    {
        Assert.Empty(SuperExperts.Detect(Profile(Load, [2, 3, 1.5, 2.5, 1, 3, 2, 1.8])));
        Assert.Empty(SuperExperts.Detect(Profile(Load)));
    }

    [Fact]
    public void An_unknown_mode_or_a_budget_outside_0_to_1_is_refused()
    {
        Assert.Throws<ArgumentException>(() => ExpertPrecision.Int8Experts(Profile(Load), "warm", 0.5));
        Assert.Throws<ArgumentException>(() => ExpertPrecision.Int8Experts(Profile(Load), "cold", 1.5));
    }
}
