using MoeCluster.Model.Generation;

namespace MoeCluster.Model.Tests.ModelCore;

public class SamplerSpec
{
    [Fact]
    public void Top_k_one_always_picks_the_argmax()
    {
        var s = new Sampler(new SamplingOptions { Temperature = 2, TopK = 1, Seed = 1 });
        float[] logits = [0.1f, 3f, 2.9f, -1f];
        for (int i = 0; i < 50; i++) Assert.Equal(1, s.Next(logits));
    }

    [Fact]
    public void Top_p_keeps_only_the_nucleus()
    {
        // probabilities ≈ [0.64, 0.24, 0.09, 0.03]: top_p 0.8 keeps tokens 0 and 1 only.
        float[] logits = [3f, 2f, 1f, 0f];
        var s = new Sampler(new SamplingOptions { Temperature = 1, TopP = 0.8, Seed = 9 });
        var seen = Enumerable.Range(0, 400).Select(_ => s.Next(logits)).ToHashSet();
        Assert.Equal([0, 1], seen.Order());
    }

    [Fact]
    public void Sampling_frequencies_follow_the_softmax()
    {
        float[] logits = [0f, (float)Math.Log(3)];   // 1:3
        var s = new Sampler(new SamplingOptions { Temperature = 1, Seed = 5 });
        int ones = Enumerable.Range(0, 4000).Count(_ => s.Next(logits) == 1);
        Assert.InRange(ones / 4000.0, 0.72, 0.78);
    }

    [Fact]
    public void Greedy_ties_resolve_to_the_lowest_index_as_torch_argmax_does()
    {
        Assert.Equal(1, Sampler.ArgMax([0f, 5f, 5f]));
    }
}
