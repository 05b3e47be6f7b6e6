using Akka.Actor;
using Akka.Cluster;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Protocol;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Attention;

/// <summary>The attention half of one decoder layer for one gateway's batch (a sharding entity): the model's
/// <see cref="AttentionBlock"/> (input norm, attention with its KV cache, residual, post-attention norm). It remembers how many positions of each slot it holds, so after a
/// restart or move it answers <see cref="AttentionCacheMissing"/> instead of attending over an empty cache.</summary>
public sealed class AttentionActor : ReceiveActor
{
    readonly string entityId;
    readonly int layer;
    readonly ModelSource model;
    AttentionBlock? block;
    RotaryEmbedding? rotary;
    KvCache? cache;
    int[] cachedLength = [];

    public static Props Props(string entityId, ModelSource model) => Akka.Actor.Props.Create(() => new AttentionActor(entityId, model));

    public AttentionActor(string entityId, ModelSource model)
    {
        this.entityId = entityId;
        this.model = model;
        layer = AttentionEntity.Layer(entityId);
        Receive<StartAttention>(Start);
        Receive<AttentionStep>(Step);
        Receive<ReleaseSlots>(m => { foreach (var s in m.Slots) if (s >= 0 && s < cachedLength.Length) cachedLength[s] = 0; });
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
            rotary = new RotaryEmbedding(c.HeadDim, m.Context, c.RopeTheta, model.Options);
            cachedLength = new int[m.Slots];
        }
        Sender.Tell(new AttentionStarted(entityId, Cluster.Get(Context.System).SelfAddress.ToString(), cache.Bytes));
    }

    void Step(AttentionStep m)
    {
        var missing = cache is null
            ? m.Layout.Segments.Select(s => s.Slot).Distinct().ToList()
            : m.Layout.Segments.Where(s => s.Slot >= cachedLength.Length || s.Start > cachedLength[s.Slot]).Select(s => s.Slot).Distinct().ToList();
        if (missing.Count > 0)
        {
            m.Input.Take().Dispose();
            Sender.Tell(new AttentionCacheMissing(m.StepId, layer, missing));
            return;
        }
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = m.Input.Take(model.Options);
        using var step = StepContext.Create(m.Layout, rotary!, model.Config, model.Options.Device);
        var (h, n) = block!.Forward(x, step, cache!);
        foreach (var s in m.Layout.Segments) cachedLength[s.Slot] = s.End;
        Sender.Tell(new AttentionComputed(m.StepId, layer, TensorPayload.Own(h), TensorPayload.Own(n)));
    }

    protected override void PostStop()
    {
        cache?.Dispose();
        rotary?.Dispose();
        block?.Dispose();
    }
}
