using MoeCluster.Model.Checkpoints;
using MoeCluster.Model.Layers;
using MoeCluster.TestSupport;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.ModelCore;

/// <summary>The blocks the cluster hosts, each loaded alone from a checkpoint by its <see cref="WeightNames"/> prefix,
/// compute exactly what the same part of the single-process model computes.</summary>
public class BlocksSpec
{
    static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Theory]
    [MemberData(nameof(TinyModels.All), MemberType = typeof(TinyModels))]
    public void Blocks_loaded_alone_compute_what_the_whole_model_computes(Architecture a)
    {
        using var model = TinyModels.Random(a);
        var c = model.Config;
        var names = new WeightNames(a);
        using var checkpoint = Checkpoint.Open(TinyCheckpoint.Write(model));
        var source = new CheckpointWeights(checkpoint);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        int layer = c.NumLayers - 1;

        using var embedding = new Layers.Embedding(c.VocabSize, c.HiddenSize, model.Options);
        ModuleWeights.Load(embedding, WeightNames.EmbeddingPrefix, source, model.Options);
        int[] tokens = [5, 17, 3, 44, 9];
        var x = embedding.Lookup(tokens);
        Assert.True(Same(x, model.Embed(tensor(tokens.Select(t => (long)t).ToArray()))));

        using var attention = new AttentionBlock(c, model.Options);
        ModuleWeights.Load(attention, names.LayerPrefix(layer), source, model.Options);
        using var cacheA = new KvCache(1, c.NumKvHeads, 8, c.HeadDim, model.Options);
        using var cacheB = new KvCache(1, c.NumKvHeads, 8, c.HeadDim, model.Options);
        var layout = StepLayout.Single(0, 0, tokens.Length);
        using var step = StepContext.Create(layout, model.Rotary, c, CPU);
        var alone = attention.Forward(x, step, cacheA);
        var inModel = model.Layers[layer].Attention.Forward(x, step, cacheB);
        Assert.True(Same(alone.Residual, inModel.Residual) && Same(alone.Normed, inModel.Normed));

        var expected = model.Layers[layer].FeedForward(alone.Normed);
        if (c.IsMoeLayer(layer))
        {
            // The router's block without experts plus experts loaded one by one, as the router and expert actors do.
            using var router = new MoeBlock(c, model.Options, routedExperts: false);
            ModuleWeights.Load(router, names.FeedForwardPrefix(layer), source, model.Options);
            Assert.Empty(router.experts);
            using var groups = router.Route(alone.Normed);
            var outputs = groups.Groups.Select(g =>
            {
                using var expert = ExpertMlp.Routed(c, model.Options);
                ModuleWeights.Load(expert, names.ExpertPrefix(layer, g.Expert), source, model.Options);
                return ((IExpertCompute)expert).Forward(alone.Normed.index_select(0, g.TokenIndices));
            }).ToList();
            var combined = MoeBlock.Combine(alone.Normed, groups, outputs, router.SharedOutput(alone.Normed));
            Assert.True(Same(combined, expected));
        }

        using var head = new OutputHead(c, model.Options, embedding);
        ModuleWeights.Load(head, WeightNames.HeadTensor, source, model.Options);
        Assert.True(Same(head.Logits(alone.Residual, layout), model.Head.Logits(alone.Residual, layout)));
    }

    [Fact]
    public void A_tied_output_head_reads_the_embedding_table_and_no_lm_head_tensor()
    {
        var c = TinyModels.Config(Architecture.Olmoe) with { TieWordEmbeddings = true };
        using var model = new MoeTransformer(c, ModuleOptions.Cpu32);
        ModuleWeights.InitializeRandom(model, seed: 3, std: 0.25);
        Assert.DoesNotContain(WeightNames.LmHead, model.ParameterNames);
        using var checkpoint = Checkpoint.Open(TinyCheckpoint.Write(model));
        using var embedding = new Layers.Embedding(c.VocabSize, c.HiddenSize, model.Options);
        using var head = new OutputHead(c, model.Options, embedding);
        var read = ModuleWeights.Load(head, WeightNames.HeadTensor, new CheckpointWeights(checkpoint), model.Options);
        Assert.Equal([WeightNames.FinalNorm], read);
        ModuleWeights.Load(embedding, WeightNames.EmbeddingPrefix, new CheckpointWeights(checkpoint), model.Options);
        using var scope = NewDisposeScope();
        var h = randn(3, c.HiddenSize);
        Assert.True(Same(head.forward(h), model.Head.forward(h)));
    }
}
