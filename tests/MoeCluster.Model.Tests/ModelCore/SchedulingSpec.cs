using MoeCluster.Model.Generation;
using MoeCluster.Model.Layers;
using MoeCluster.TestSupport;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.ModelCore;

/// <summary>What the scheduler does around sampling: per-choice seeds in a mixed batch, priority with preemption,
/// prompt scoring across prefill chunks, constrained sequences ending when their output is complete.</summary>
public class SchedulingSpec
{
    static readonly BatchingOptions Options = new() { MaxBatchSize = 4, ContextLength = 64, MaxPrefillTokensPerStep = 64 };

    [Fact]
    public void A_seeded_request_generates_the_same_tokens_alone_and_in_a_batch_with_different_settings()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var seeded = new GenerationRequest("a", [3, 1, 4, 1, 5], 12) { Sampling = new SamplingOptions { Temperature = 1.2, TopK = 30, Seed = 99, FrequencyPenalty = 0.5 } };
        using var alone = new LocalEngine(model, Options);
        var expected = alone.Run([seeded])["a"].Generated;

        using var mixed = new LocalEngine(model, Options);
        var others = new[]
        {
            new GenerationRequest("b", [9, 2, 6], 12) { Sampling = new SamplingOptions { Temperature = 0.7, MinP = 0.1, RepetitionPenalty = 1.3 } },
            new GenerationRequest("c", [7, 7], 12) { Sampling = SamplingOptions.GreedyDecoding with { LogitBias = new Dictionary<int, float> { [5] = 8 } } },
        };
        var together = mixed.Run([others[0], seeded, others[1]]);
        Assert.Equal(expected, together["a"].Generated);
        Assert.All(together["c"].Generated, t => Assert.Equal(5, t));       // +8 on token 5 wins every greedy step here
    }

    [Fact]
    public void A_higher_priority_request_preempts_a_running_one_which_later_resumes_with_the_same_tokens()
    {
        using var model = TinyModels.Random(Architecture.Qwen2Moe);
        var batch = new GenerationRequest("job", [3, 1, 4, 1, 5], 20) { Priority = 10 };
        using var reference = new LocalEngine(model, Options);
        var expected = reference.Run([batch])["job"].Generated;

        using var engine = new LocalEngine(model, Options with { MaxBatchSize = 1 });
        Assert.True(engine.Scheduler.TryEnqueue(batch));
        var events = new List<GenerationEvent>();
        for (int i = 0; i < 5; i++) engine.Step(events);                    // the job holds the only slot
        Assert.True(engine.Scheduler.TryEnqueue(new GenerationRequest("chat", [2, 7], 4)));
        engine.Step(events);
        Assert.Equal(1, engine.Scheduler.Preemptions);
        while (engine.Step(events)) { }
        var finished = events.OfType<SequenceFinished>().Select(f => f.RequestId).ToList();
        Assert.Equal(["chat", "job"], finished);
        Assert.Equal(expected, events.OfType<SequenceFinished>().Single(f => f.RequestId == "job").Generated);
        Assert.Equal(expected.Count, events.OfType<TokenGenerated>().Count(t => t.RequestId == "job"));
    }

    [Fact]
    public void Releasing_the_running_requests_hands_back_those_that_streamed_nothing_and_ends_the_others_with_an_error()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        using var engine = new LocalEngine(model, Options with { MaxBatchSize = 2, MaxPrefillTokensPerStep = 4 });
        var events = new List<GenerationEvent>();
        engine.Scheduler.TryEnqueue(new GenerationRequest("streamed", [1, 2], 10));
        while (!events.OfType<TokenGenerated>().Any()) engine.Step(events);
        engine.Scheduler.TryEnqueue(new GenerationRequest("prefilling", Enumerable.Range(1, 20).ToArray(), 10));
        engine.Step(events);                                                    // 20 prompt tokens, at most 4 a step
        Assert.Equal(2, engine.Scheduler.Running);
        Assert.DoesNotContain(events, e => e.RequestId == "prefilling");

        var released = new List<GenerationEvent>();
        Assert.Equal(["prefilling"], engine.Scheduler.ReleaseRunning("stopped", released));
        var ended = Assert.IsType<SequenceFinished>(Assert.Single(released));
        Assert.Equal(("streamed", FinishReason.Error, "stopped"), (ended.RequestId, ended.Reason, ended.Error));
        Assert.Equal(events.OfType<TokenGenerated>().Select(t => t.Token), ended.Generated);
        Assert.True(engine.Scheduler.IsIdle);
    }

    [Fact]
    public void Requests_of_equal_priority_never_preempt_each_other()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        using var engine = new LocalEngine(model, Options with { MaxBatchSize = 1 });
        engine.Scheduler.TryEnqueue(new GenerationRequest("first", [1, 2], 6));
        var events = new List<GenerationEvent>();
        engine.Step(events);
        engine.Scheduler.TryEnqueue(new GenerationRequest("second", [1, 2], 6));
        while (engine.Step(events)) { }
        Assert.Equal(0, engine.Scheduler.Preemptions);
        Assert.Equal(["first", "second"], events.OfType<SequenceFinished>().Select(f => f.RequestId));
    }

    [Fact]
    public void Prompt_scoring_across_prefill_chunks_equals_the_log_softmax_of_a_full_forward()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        int[] prompt = [5, 17, 3, 44, 9, 12, 8, 30, 2];
        using var engine = new LocalEngine(model, Options with { MaxPrefillTokensPerStep = 4 });
        var scored = new List<PromptTokensScored>();
        engine.Run([new GenerationRequest("p", prompt, 2) { PromptLogprobs = 2 }], e => { if (e is PromptTokensScored s) scored.Add(s); });
        var logprobs = scored.SelectMany(s => s.Logprobs).ToList();
        Assert.Equal(1, scored[0].First);
        Assert.Equal(prompt.Length - 1, logprobs.Count);
        Assert.True(scored.Count > 1, "the prompt was prefilled in several chunks");

        var caches = model.CreateCaches(1, 32);
        try
        {
            using var scope = NewDisposeScope();
            var rows = Enumerable.Range(0, prompt.Length).Select(i => (long)i).ToArray();
            var full = model.Forward(tensor(prompt.Select(t => (long)t).ToArray()), StepLayout.Single(0, 0, prompt.Length), caches, logitRows: rows).log_softmax(-1);
            for (int i = 1; i < prompt.Length; i++)
            {
                Assert.Equal(prompt[i], logprobs[i - 1].Token);
                Assert.Equal(full[i - 1, prompt[i]].item<float>(), logprobs[i - 1].Logprob, 4);
                Assert.Equal(2, logprobs[i - 1].Top.Count);
                Assert.Equal(full[i - 1].argmax().item<long>(), logprobs[i - 1].Top[0].Token);
            }
        }
        finally { foreach (var c in caches) c.Dispose(); }
    }

    sealed class OnlyToken(int token, int length) : ITokenConstraint
    {
        int taken;
        public void FillAllowed(bool[] allowed, int tokensLeft) => allowed[token] = true;
        public void Accept(int t) { Assert.Equal(token, t); taken++; }
        public bool IsComplete => taken == length;
    }

    [Fact]
    public void A_constrained_sequence_takes_only_allowed_tokens_and_stops_when_complete()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        using var engine = new LocalEngine(model, Options);
        var r = new GenerationRequest("c", [1, 2, 3], 20) { Sampling = new SamplingOptions { Temperature = 1 }, Constraint = () => new OnlyToken(11, 3) };
        var f = engine.Run([r])["c"];
        Assert.Equal([11, 11, 11], f.Generated);
        Assert.Equal(FinishReason.Stop, f.Reason);
    }
}
