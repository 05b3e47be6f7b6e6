using MoeCluster.Model.Generation;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.ModelCore;

public class BatchSamplerSpec
{
    static SamplingRow Row(int row, SamplingOptions o, int[]? generated = null, int[]? prompt = null, int[]? stops = null, int? logprobs = null,
        bool[]? allowed = null, Random? random = null) =>
        new(row, o, prompt ?? [], generated ?? [], stops ?? [], random ?? new Random(o.Seed is long s ? (int)s : 1), logprobs, allowed);

    static int[] Sample(float[][] logits, params SamplingRow[] rows)
    {
        using var scope = NewDisposeScope();
        return BatchSampler.Sample(tensor(logits.SelectMany(r => r).ToArray()).view(logits.Length, logits[0].Length), rows).Select(t => t.Token).ToArray();
    }

    static readonly SamplingOptions Greedy = SamplingOptions.GreedyDecoding;

    [Fact]
    public void Top_k_one_always_picks_the_argmax()
    {
        var o = new SamplingOptions { Temperature = 2, TopK = 1 };
        var random = new Random(1);
        for (int i = 0; i < 50; i++) Assert.Equal([1], Sample([[0.1f, 3f, 2.9f, -1f]], Row(0, o, random: random)));
    }

    [Fact]
    public void Top_p_keeps_only_the_nucleus()
    {
        // probabilities ≈ [0.64, 0.24, 0.09, 0.03]: top_p 0.8 keeps tokens 0 and 1 only.
        var o = new SamplingOptions { Temperature = 1, TopP = 0.8 };
        var random = new Random(9);
        var seen = Enumerable.Range(0, 400).Select(_ => Sample([[3f, 2f, 1f, 0f]], Row(0, o, random: random))[0]).ToHashSet();
        Assert.Equal([0, 1], seen.Order());
    }

    [Fact]
    public void Min_p_drops_tokens_below_a_fraction_of_the_most_likely()
    {
        // probabilities ∝ [5, 3, 2, 1]: min_p 0.5 keeps tokens with p ≥ 0.5 × p(0), i.e. 0 and 1 (token 2 has 0.4 of it).
        float[] logits = [MathF.Log(5), MathF.Log(3), MathF.Log(2), 0];
        var random = new Random(4);
        var seen = Enumerable.Range(0, 400).Select(_ => Sample([logits], Row(0, new SamplingOptions { MinP = 0.5 }, random: random))[0]).ToHashSet();
        Assert.Equal([0, 1], seen.Order());
    }

    [Fact]
    public void Sampling_frequencies_follow_the_softmax()
    {
        var random = new Random(5);
        int ones = Enumerable.Range(0, 4000).Count(_ => Sample([[0f, (float)Math.Log(3)]], Row(0, new SamplingOptions(), random: random))[0] == 1);   // 1:3
        Assert.InRange(ones / 4000.0, 0.72, 0.78);
    }

    [Fact]
    public void Greedy_ties_resolve_to_the_lowest_index_as_torch_argmax_does()
    {
        Assert.Equal([1], Sample([[0f, 5f, 5f]], Row(0, Greedy)));
    }

    [Fact]
    public void Frequency_and_presence_penalties_lower_tokens_already_in_the_output()
    {
        float[] logits = [2f, 1.9f, 0f];
        // Token 0 was generated twice: 2 − 2 × 0.1 = 1.8 < 1.9. Presence subtracts once: 2 − 0.05 > 1.9, 2 − 0.2 < 1.9.
        Assert.Equal([1, 0, 1, 1], Sample([logits, logits, logits, logits],
            Row(0, Greedy with { FrequencyPenalty = 0.1 }, generated: [0, 0]),
            Row(1, Greedy with { PresencePenalty = 0.05 }, generated: [0, 0]),
            Row(2, Greedy with { PresencePenalty = 0.2 }, generated: [0]),
            Row(3, Greedy with { FrequencyPenalty = -1 }, generated: [1])));   // a negative penalty rewards repeats: 1.9 + 1 > 2
    }

    [Fact]
    public void Repetition_penalty_divides_positive_and_multiplies_negative_logits_of_prompt_and_output_tokens()
    {
        // vLLM: seen tokens' logits l → l / p when l > 0, l × p otherwise.
        Assert.Equal([1], Sample([[2f, 1.9f, 0f]], Row(0, Greedy with { RepetitionPenalty = 2 }, prompt: [0])));
        Assert.Equal([0], Sample([[2f, 1.9f, 0f]], Row(0, Greedy with { RepetitionPenalty = 2 }, prompt: [2])));
        Assert.Equal([2], Sample([[-1f, -1.5f, -0.6f]], Row(0, Greedy with { RepetitionPenalty = 1.5 }, generated: [0])));
        Assert.Equal([0], Sample([[-1f, -1.5f, -0.6f]], Row(0, Greedy with { RepetitionPenalty = 2 }, generated: [2])));
    }

    [Fact]
    public void Logit_bias_min_tokens_and_allowed_masks_apply_per_row_in_one_batch()
    {
        float[] logits = [3f, 1f, 0f, 0.5f];
        var biased = new Dictionary<int, float> { [2] = 100 };
        bool[] onlyThree = [false, false, false, true];
        Assert.Equal([0, 2, 1, 3, 0], Sample([logits, logits, logits, logits, logits],
            Row(0, Greedy),
            Row(1, Greedy with { LogitBias = biased }),
            Row(2, Greedy with { MinTokens = 2 }, generated: [1], stops: [0]),        // stop token 0 masked before 2 tokens
            Row(3, Greedy, allowed: onlyThree),
            Row(4, Greedy with { MinTokens = 2 }, generated: [1, 1], stops: [0])));   // min_tokens reached
    }

    [Fact]
    public void A_seeded_row_draws_the_same_tokens_whatever_else_is_in_the_batch()
    {
        float[] logits = [0.3f, 0.1f, 0.2f, 0.25f, 0f];
        var o = new SamplingOptions { Seed = 77, Temperature = 1.3, TopK = 4, TopP = 0.95 };
        int[] Alone() { var r = new Random(77); return Enumerable.Range(0, 40).Select(_ => Sample([logits], Row(0, o, random: r))[0]).ToArray(); }
        int[] InBatch()
        {
            var r = new Random(77);
            var other = new Random(3);
            return Enumerable.Range(0, 40).Select(_ => Sample([logits, logits, logits],
                Row(0, new SamplingOptions { Temperature = 0.7 }, random: other), Row(1, Greedy), Row(2, o, random: r))[2]).ToArray();
        }
        var alone = Alone();
        Assert.Equal(alone, InBatch());
        Assert.True(alone.Distinct().Count() > 1, "the row should actually sample");
    }

    [Fact]
    public void Logprobs_are_the_log_softmax_of_the_raw_logits_with_rank_and_sorted_alternatives()
    {
        float[] logits = [1f, 3f, 2f, 0f];
        using var scope = NewDisposeScope();
        var expected = tensor(logits).log_softmax(0).data<float>().ToArray();
        var t = BatchSampler.Sample(tensor(logits).view(1, 4), [Row(0, Greedy with { LogitBias = new Dictionary<int, float> { [2] = 50 } }, logprobs: 3)])[0];
        Assert.Equal(2, t.Token);
        Assert.Equal(expected[2], t.Logprob!.Logprob, 5);
        Assert.Equal(2, t.Logprob.Rank);                                    // raw logprobs: token 1 is more likely
        Assert.Equal([1, 2, 0], t.Logprob.Top.Select(a => a.Token));
        Assert.Equal(expected[1], t.Logprob.Top[0].Logprob, 5);
    }
}
