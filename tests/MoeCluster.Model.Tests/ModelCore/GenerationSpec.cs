using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
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
                int next = Sampler.ArgMax(logits[0].data<float>().ToArray());
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
}
