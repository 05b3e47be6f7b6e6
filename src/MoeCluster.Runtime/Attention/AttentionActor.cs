using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Faults;
using MoeCluster.Runtime.Metrics;
using MoeCluster.Runtime.Protocol;
using MoeCluster.Runtime.Serialization;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Attention;

/// <summary>The attention half of one decoder layer for one gateway's batch (a sharding entity): the model's
/// <see cref="AttentionBlock"/> (input norm, attention with its KV cache, residual, post-attention norm). It remembers how many positions of each slot it holds, so after a
/// restart or move it answers <see cref="AttentionCacheMissing"/> instead of attending over an empty cache (or copying a
/// cached prefix, <see cref="AttentionStep.Copies"/>, out of a slot it no longer holds). A step it
/// cannot compute — malformed (a slot or position outside the cache, rows that do not match the layout) or one that
/// throws (out of memory on a long prefill) — is answered with <see cref="AttentionFailed"/> at once; the entity keeps
/// its cache and goes on, since a restart would drop every sequence's KV cache.</summary>
public sealed class AttentionActor : ReceiveActor
{
    readonly string entityId;
    readonly int layer;
    readonly ModelSource model;
    readonly FaultInjector? faults;
    readonly ILoggingAdapter log = Context.GetLogger();
    AttentionBlock? block;
    RotaryEmbedding? rotary;
    KvCache? cache;
    int[] cachedLength = [];

    public static Props Props(string entityId, ModelSource model, FaultInjector? faults = null) =>
        Akka.Actor.Props.Create(() => new AttentionActor(entityId, model, faults));

    public AttentionActor(string entityId, ModelSource model, FaultInjector? faults)
    {
        this.entityId = entityId;
        this.model = model;
        this.faults = faults;
        layer = AttentionEntity.Layer(entityId);
        Receive<StartAttention>(Start);
        Receive<AttentionStep>(Step);
    }

    protected override void PreStart()
    {
        var c = model.Config;
        if (layer < 0 || layer >= c.NumLayers) throw new ArgumentException($"layer {layer} does not exist in {model.Directory}");
        block = new AttentionBlock(c, model.Options);
        model.Load(block, model.Names.LayerPrefix(layer));
    }

    void Start(StartAttention m)
    {
        if (cache is null || cache.Slots != m.Slots || cache.Capacity != m.Context)
        {
            cache?.Dispose();
            rotary?.Dispose();
            var c = model.Config;
            cache = new KvCache(m.Slots, c.NumKvHeads, m.Context, c.HeadDim, model.Options);
            rotary = new RotaryEmbedding(c.HeadDim, m.Context, c.RopeTheta, model.Options, c.RopeScaling, c.MaxPositionEmbeddings);
            cachedLength = new int[m.Slots];
        }
        Sender.Tell(new AttentionStarted(entityId, Cluster.Get(Context.System).SelfAddress.ToString(), cache.Bytes));
    }

    void Step(AttentionStep m)
    {
        if (Malformed(m) is { } problem)
        {
            m.Input.Take().Dispose();
            MoeMetrics.FrameRejected(FrameRejection.Inconsistent);
            log.Warning("attention layer {0} refused step {1}: {2}", layer, m.StepId, problem);
            Sender.Tell(new AttentionFailed(m.StepId, layer, $"malformed step: {problem}"));
            return;
        }
        var missing = Missing(m);
        if (missing.Count > 0)
        {
            m.Input.Take().Dispose();
            Sender.Tell(new AttentionCacheMissing(m.StepId, layer, missing));
            return;
        }
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        try
        {
            var x = m.Input.Take(model.Options);
            faults?.ThrowIfArmed(FaultSite.Attention, entityId);
            foreach (var c in m.Copies)
            {
                cache!.CopyPrefix(c.FromSlot, c.ToSlot, c.Tokens);
                cachedLength[c.ToSlot] = c.Tokens;
            }
            using var step = StepContext.Create(m.Layout, rotary!, model.Config, model.Options.Device);
            var (h, n) = block!.Forward(x, step, cache!);
            foreach (var s in m.Layout.Segments) cachedLength[s.Slot] = s.End;
            Sender.Tell(new AttentionComputed(m.StepId, layer, TensorPayload.Own(h), TensorPayload.Own(n)));
        }
        catch (Exception e)
        {
            log.Warning("attention layer {0} failed step {1}: {2}", layer, m.StepId, e.Message);
            Sender.Tell(new AttentionFailed(m.StepId, layer, e.Message));
        }
    }

    /// <summary>Slots whose positions the step needs and this entity does not hold: the sources of copies longer than
    /// what they hold (with their targets), and segments starting beyond what their slot holds once the copies are made.</summary>
    List<int> Missing(AttentionStep m)
    {
        if (cache is null) return m.Layout.Segments.Select(s => s.Slot).Concat(m.Copies.Select(c => c.ToSlot)).Distinct().ToList();
        var length = (int[])cachedLength.Clone();
        var missing = new List<int>();
        foreach (var c in m.Copies)
        {
            if (length[c.FromSlot] >= c.Tokens) length[c.ToSlot] = c.Tokens;
            else missing.AddRange([c.FromSlot, c.ToSlot]);
        }
        missing.AddRange(m.Layout.Segments.Where(s => s.Start > length[s.Slot]).Select(s => s.Slot));
        return missing.Distinct().ToList();
    }

    /// <summary>What makes a step impossible to run against this cache and model (null when it is well formed). The
    /// serializer has checked the frame's own consistency; only this actor knows its slots, context and hidden size.</summary>
    string? Malformed(AttentionStep m)
    {
        if (m.Input.Shape is not [var rows, var hidden] || hidden != model.Config.HiddenSize)
            return $"input [{string.Join(", ", m.Input.Shape)}] is not [tokens, {model.Config.HiddenSize}]";
        if (rows != m.Layout.TokenCount) return $"the layout covers {m.Layout.TokenCount} tokens, the input has {rows} rows";
        if (cache is null) return null;   // answered with AttentionCacheMissing
        try
        {
            cache.Validate(m.Layout);
            foreach (var c in m.Copies) cache.ValidateCopy(c.FromSlot, c.ToSlot, c.Tokens);
        }
        catch (ArgumentOutOfRangeException e) { return e.Message; }
        return null;
    }

    protected override void PostStop()
    {
        cache?.Dispose();
        rotary?.Dispose();
        block?.Dispose();
    }
}
