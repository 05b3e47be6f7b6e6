using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.TestSupport;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.ModelCore;

public class GenerationSpec
{
    static readonly BatchingOptions Options = new() { MaxBatchSize = 4, ContextLength = 64, MaxPrefillTokensPerStep = 64 };

    [Theory]
    [MemberData(nameof(TinyModels.All), MemberType = typeof(TinyModels))]
    public void Kv_cache_decoding_equals_full_recomputation(Architecture a)
    {
        using var model = TinyModels.Random(a);
        int[] prompt = [5, 17, 3, 44, 9];
        var caches = model.CreateCaches(1, 32);
        try
        {
            using var scope = NewDisposeScope();
            var tokens = prompt.ToList();
            var logits = model.Forward(tensor(tokens.Select(t => (long)t).ToArray()), StepLayout.Single(0, 0, tokens.Count), caches);
            for (int step = 0; step < 8; step++)
            {
                int next = (int)logits[0].argmax().item<long>();
                tokens.Add(next);
                logits = model.Forward(tensor(new long[] { next }), StepLayout.Single(0, tokens.Count - 1, 1), caches);
                var fresh = model.CreateCaches(1, 32);
                try
                {
                    var full = model.Forward(tensor(tokens.Select(t => (long)t).ToArray()), StepLayout.Single(0, 0, tokens.Count), fresh);
                    Assert.True(allclose(logits, full, rtol: 1e-4, atol: 1e-4), $"step {step}: max diff {(logits - full).abs().max().item<float>()}");
                }
                finally { foreach (var c in fresh) c.Dispose(); }
            }
        }
        finally { foreach (var c in caches) c.Dispose(); }
    }

    [Theory]
    [MemberData(nameof(TinyModels.All), MemberType = typeof(TinyModels))]
    public void A_batch_of_different_length_sequences_equals_each_sequence_generated_alone(Architecture a)
    {
        using var model = TinyModels.Random(a);
        var requests = new[]
        {
            new GenerationRequest("short", [4, 8], 12),
            new GenerationRequest("long", Enumerable.Range(10, 23).ToArray(), 6),
            new GenerationRequest("mid", [50, 51, 52, 53, 54, 55, 56], 9),
        };
        Dictionary<string, IReadOnlyList<int>> alone = new();
        foreach (var r in requests)
        {
            using var engine = new LocalEngine(model, Options);
            alone[r.Id] = engine.Run([r])[r.Id].Generated;
        }
        using var batched = new LocalEngine(model, Options with { MaxPrefillTokensPerStep = 8 });  // chunked prefill too
        var together = batched.Run(requests);
        foreach (var r in requests)
        {
            Assert.Equal(FinishReason.Length, together[r.Id].Reason);
            Assert.Equal(alone[r.Id], together[r.Id].Generated);
        }
    }

    [Fact]
    public void Generation_stops_at_a_stop_token_without_emitting_it()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        using var engine = new LocalEngine(model, Options);
        var free = engine.Run([new GenerationRequest("a", [1, 2, 3], 10)])["a"].Generated;
        using var engine2 = new LocalEngine(model, Options);
        var stopped = engine2.Run([new GenerationRequest("a", [1, 2, 3], 10) { StopTokenIds = [free[3]] }])["a"];
        Assert.Equal(FinishReason.Stop, stopped.Reason);
        Assert.Equal(free.Take(free.ToList().IndexOf(free[3])), stopped.Generated);
    }

    [Fact]
    public void Seeded_sampling_is_reproducible_and_differs_from_greedy()
    {
        using var model = TinyModels.Random(Architecture.Qwen3Moe);
        var sampling = new SamplingOptions { Temperature = 1.5, TopK = 20, TopP = 0.95, Seed = 42 };
        IReadOnlyList<int> Run(SamplingOptions s)
        {
            using var engine = new LocalEngine(model, Options);
            return engine.Run([new GenerationRequest("s", [7, 7, 7], 16) { Sampling = s }])["s"].Generated;
        }
        var first = Run(sampling);
        Assert.Equal(first, Run(sampling));
        Assert.NotEqual(first, Run(SamplingOptions.GreedyDecoding));
        Assert.NotEqual(first, Run(sampling with { Seed = 43 }));
    }

    [Fact]
    public void Sequences_whose_kv_cache_was_lost_are_re_prefilled_and_produce_the_same_tokens()
    {
        using var model = TinyModels.Random(Architecture.Qwen2Moe);
        var requests = new[] { new GenerationRequest("a", [3, 1, 4, 1, 5], 14), new GenerationRequest("b", [9, 2, 6], 10) };
        using var reference = new LocalEngine(model, Options);
        var expected = reference.Run(requests);

        using var engine = new LocalEngine(model, Options with { MaxPrefillTokensPerStep = 4 });
        foreach (var r in requests) Assert.True(engine.Scheduler.TryEnqueue(r));
        var events = new List<GenerationEvent>();
        for (int i = 0; i < 6; i++) engine.Step(events);
        engine.DropCaches();
        while (engine.Step(events)) { }
        var finished = events.OfType<SequenceFinished>().ToDictionary(f => f.RequestId);
        foreach (var r in requests) Assert.Equal(expected[r.Id].Generated, finished[r.Id].Generated);
        // Each token is reported once, even though part of the sequence was computed twice.
        Assert.Equal(finished["a"].Generated.Count, events.OfType<TokenGenerated>().Count(t => t.RequestId == "a"));
    }

    [Fact]
    public void A_full_queue_refuses_new_requests_and_cancelling_frees_the_slot()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        using var engine = new LocalEngine(model, Options with { MaxBatchSize = 1, MaxQueuedRequests = 1 });
        Assert.True(engine.Scheduler.TryEnqueue(new GenerationRequest("a", [1, 2], 30)));
        var events = new List<GenerationEvent>();
        engine.Step(events);                                               // "a" takes the only slot
        Assert.True(engine.Scheduler.TryEnqueue(new GenerationRequest("b", [1, 2], 5)));
        Assert.False(engine.Scheduler.TryEnqueue(new GenerationRequest("c", [1, 2], 5)));
        Assert.True(engine.Scheduler.CachedTokens > 0);
        Assert.True(engine.Scheduler.Cancel("a"));
        engine.Step(events);
        Assert.Contains(events, e => e is SequenceFinished { RequestId: "a", Reason: FinishReason.Cancelled });
        Assert.Equal(1, engine.Scheduler.Running);                         // "b" got the freed slot
        Assert.Equal(2, engine.Scheduler.CachedTokens);                    // only b's prompt is cached now
    }

    [Fact]
    public void Requests_that_cannot_fit_the_context_are_rejected_naming_the_field()
    {
        var s = new BatchScheduler(Options, vocabSize: 64);
        var e = Assert.Throws<InvalidGenerationRequestException>(() => s.TryEnqueue(new GenerationRequest("x", Enumerable.Repeat(1, 60).ToArray(), 10)));
        Assert.Equal("max_tokens", e.Field);
        Assert.Equal("prompt", Assert.Throws<InvalidGenerationRequestException>(() => s.TryEnqueue(new GenerationRequest("y", [], 10))).Field);
        Assert.Equal("temperature", Assert.Throws<InvalidGenerationRequestException>(() =>
            s.TryEnqueue(new GenerationRequest("z", [1], 1) { Sampling = new SamplingOptions { Temperature = -1 } })).Field);
    }
}
