using MoeCluster.Model.Generation;
using MoeCluster.TestSupport;

namespace MoeCluster.Model.Tests.ModelCore;

/// <summary>Prefix caching: a request reuses the KV cache of the full blocks another request left in a slot (taking a
/// free slot as it is, or copying from a running one), produces the greedy tokens it would produce without the cache,
/// and reports the reused prompt tokens; slots are evicted least recently used; lost caches are forgotten.</summary>
public class PrefixCachingSpec
{
    static readonly BatchingOptions Options = new() { MaxBatchSize = 4, ContextLength = 64, MaxPrefillTokensPerStep = 64, PrefixCacheBlockSize = 8 };

    static int[] Prompt(int length, int seed) => Enumerable.Range(0, length).Select(i => (i * 31 + seed * 7 + 3) % 97).ToArray();

    static int[] SharedThen(int[] prefix, params int[] suffix) => [.. prefix, .. suffix];

    static IReadOnlyList<int> Uncached(MoeTransformer model, GenerationRequest r)
    {
        using var engine = new LocalEngine(model, Options with { PrefixCaching = false });
        return engine.Run([r])[r.Id].Generated;
    }

    [Theory]
    [MemberData(nameof(TinyModels.All), MemberType = typeof(TinyModels))]
    public void A_second_request_with_the_same_prefix_reuses_its_blocks_and_generates_the_same_greedy_tokens(Architecture a)
    {
        using var model = TinyModels.Random(a);
        var prefix = Prompt(27, 1);
        var first = new GenerationRequest("first", SharedThen(prefix, 5, 6), 8);
        var second = new GenerationRequest("second", SharedThen(prefix, 40, 41, 42), 8);
        using var engine = new LocalEngine(model, Options);

        var one = engine.Run([first])["first"];
        var two = engine.Run([second])["second"];

        Assert.Equal(0, one.CachedPromptTokens);
        Assert.Equal(24, two.CachedPromptTokens);                   // the 3 full blocks of 8 inside the shared 27 tokens
        Assert.Equal(Uncached(model, first), one.Generated);
        Assert.Equal(Uncached(model, second), two.Generated);
        Assert.Equal(first.PromptTokens.Count + second.PromptTokens.Count, engine.Scheduler.PrefixCacheQueriedTokens);
        Assert.Equal(24, engine.Scheduler.PrefixCacheHitTokens);
    }

    [Fact]
    public void The_same_prompt_again_leaves_its_last_block_to_compute_so_the_first_token_has_logits()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var prompt = Prompt(24, 2);
        using var engine = new LocalEngine(model, Options);
        var expected = engine.Run([new GenerationRequest("a", prompt, 6)])["a"].Generated;
        var again = engine.Run([new GenerationRequest("b", prompt, 6)])["b"];
        Assert.Equal(16, again.CachedPromptTokens);
        Assert.Equal(expected, again.Generated);
    }

    [Fact]
    public void A_request_arriving_while_the_holder_runs_copies_its_blocks_into_a_slot_of_its_own()
    {
        using var model = TinyModels.Random(Architecture.Qwen2Moe);
        var prefix = Prompt(20, 3);
        var holder = new GenerationRequest("holder", SharedThen(prefix, 1), 20);
        var late = new GenerationRequest("late", SharedThen(prefix, 2, 3), 6);
        using var engine = new LocalEngine(model, Options);
        var events = new List<GenerationEvent>();
        var plans = new List<StepPlan>();
        Assert.True(engine.Scheduler.TryEnqueue(holder));
        for (int i = 0; i < 3; i++) engine.Step(events, plans.Add);
        Assert.True(engine.Scheduler.TryEnqueue(late));
        while (engine.Step(events, plans.Add)) { }

        var copy = Assert.Single(plans.SelectMany(p => p.Copies));
        Assert.Equal(16, copy.Tokens);
        Assert.NotEqual(copy.FromSlot, copy.ToSlot);
        var finished = events.OfType<SequenceFinished>().ToDictionary(f => f.RequestId);
        Assert.Equal(16, finished["late"].CachedPromptTokens);
        Assert.Equal(Uncached(model, late), finished["late"].Generated);
        Assert.Equal(Uncached(model, holder), finished["holder"].Generated);
    }

    [Fact]
    public void The_least_recently_used_free_slot_is_reused_first_and_its_prefix_forgotten()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        using var engine = new LocalEngine(model, Options with { MaxBatchSize = 2 });
        var p1 = Prompt(17, 4);
        var p2 = Prompt(17, 5);
        engine.Run([new GenerationRequest("p1", p1, 2)]);
        engine.Run([new GenerationRequest("p2", p2, 2)]);               // both slots hold a prefix now; p1's is older
        engine.Run([new GenerationRequest("p3", Prompt(17, 6), 2)]);    // evicts p1's slot
        Assert.Equal(16, engine.Run([new GenerationRequest("p2 again", p2, 2)])["p2 again"].CachedPromptTokens);
        Assert.Equal(0, engine.Run([new GenerationRequest("p1 again", p1, 2)])["p1 again"].CachedPromptTokens);
    }

    [Fact]
    public void After_the_caches_are_lost_nothing_is_reused_and_the_tokens_are_the_same()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var prompt = Prompt(30, 7);
        using var engine = new LocalEngine(model, Options);
        var expected = engine.Run([new GenerationRequest("a", prompt, 6)])["a"].Generated;
        engine.DropCaches();
        var after = engine.Run([new GenerationRequest("b", prompt, 6)])["b"];
        Assert.Equal(0, after.CachedPromptTokens);
        Assert.Equal(expected, after.Generated);
    }

    [Fact]
    public void A_request_scoring_its_prompt_computes_it_whole_and_switching_the_cache_off_reuses_nothing()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var prompt = Prompt(30, 8);
        using var engine = new LocalEngine(model, Options);
        engine.Run([new GenerationRequest("a", prompt, 2)]);
        Assert.Equal(0, engine.Run([new GenerationRequest("echo", prompt, 2) { PromptLogprobs = 0 }])["echo"].CachedPromptTokens);

        using var off = new LocalEngine(model, Options with { PrefixCaching = false });
        off.Run([new GenerationRequest("a", prompt, 2)]);
        Assert.Equal(0, off.Run([new GenerationRequest("b", prompt, 2)])["b"].CachedPromptTokens);
        Assert.Equal(0, off.Scheduler.PrefixCacheQueriedTokens);
    }

    [Fact]
    public void The_choices_of_one_prompt_prefill_it_once_and_copy_its_blocks_each_with_its_own_seeded_tokens()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var prompt = Prompt(28, 9);
        var choices = Enumerable.Range(0, 3).Select(j => new GenerationRequest($"c{j}", prompt, 6)
        {
            Sampling = new SamplingOptions { Temperature = 1.0, Seed = 40 + j },
            PrefillGroup = "request",
        }).ToArray();
        using var engine = new LocalEngine(model, Options);
        var plans = new List<StepPlan>();
        foreach (var c in choices) Assert.True(engine.Scheduler.TryEnqueue(c));
        var events = new List<GenerationEvent>();
        while (engine.Step(events, plans.Add)) { }

        var finished = events.OfType<SequenceFinished>().ToDictionary(f => f.RequestId);
        Assert.Equal(2, plans.SelectMany(p => p.Copies).Count());
        Assert.Equal([0, 24, 24], choices.Select(c => finished[c.Id].CachedPromptTokens));
        // Prefilled: the whole prompt once, then the 4 tokens after the 3 copied blocks for each other choice.
        int prefilled = plans.Sum(p => p.Layout.Segments.Where(s => s.Length > 1 || s.Start < prompt.Length).Sum(s => s.Length));
        Assert.Equal(prompt.Length + 2 * (prompt.Length - 24), prefilled);
        foreach (var c in choices) Assert.Equal(Uncached(model, c), finished[c.Id].Generated);
        Assert.NotEqual(finished["c0"].Generated, finished["c1"].Generated);     // each its own generator
    }

    [Fact]
    public void Block_hashes_are_chained_so_a_block_matches_only_after_the_same_tokens()
    {
        var cache = new PrefixCache(slots: 2, blockSize: 4);
        int[] a = [1, 2, 3, 4, 5, 6, 7, 8];
        int[] b = [9, 9, 9, 9, 5, 6, 7, 8];                              // same second block after a different first
        cache.Extend(0, i => a[i], a.Length);
        Assert.Equal(2, cache.Match(i => a[i], a.Length, _ => true).Blocks);
        Assert.Equal(0, cache.Match(i => b[i], b.Length, _ => true).Blocks);
        Assert.Equal(0, cache.Match(i => a[i], a.Length, s => s != 0).Blocks);
        cache.Truncate(0, 1);
        Assert.Equal(1, cache.Match(i => a[i], a.Length, _ => true).Blocks);
    }
}
