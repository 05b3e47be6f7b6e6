using Akka.Actor;
using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Runtime.Metrics;
using MoeCluster.TestSupport;

namespace MoeCluster.Runtime.Tests;

/// <summary>Prefix caching through the cluster: the gateway's scheduler decides the cached prefix, the attention entities
/// of every layer reuse or copy its blocks, and the tokens are those of the single-process model core without a cache;
/// an entity that lost its cache answers CacheMissing and the sequence is prefilled again, with the same tokens.</summary>
public class ClusterPrefixCacheSpec
{
    static readonly BatchingOptions Batching = new() { MaxBatchSize = 4, ContextLength = 96, MaxPrefillTokensPerStep = 64, PrefixCacheBlockSize = 8 };

    static readonly int[] Shared = Enumerable.Range(0, 30).Select(i => (i * 13 + 5) % 97).ToArray();

    static GenerationRequest Request(string id, int maxTokens, params int[] suffix) => new(id, [.. Shared, .. suffix], maxTokens);

    /// <summary>One node with every role, or three (gateway | attention | experts) so every attention step, its KV
    /// copies included, crosses the network.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public async Task A_cluster_reuses_cached_prefixes_copies_them_between_slots_and_prefills_again_after_an_entity_lost_its_cache(int nodeCount)
    {
        using var model = TinyModels.Random(Architecture.Qwen2Moe);
        var checkpoint = TinyCheckpoint.Write(model);
        var requests = new[] { Request("first", 6, 1, 2), Request("second", 6, 3), Request("holder", 30, 4), Request("copier", 6, 5, 6), Request("after loss", 6, 7) };
        var expected = new Dictionary<string, IReadOnlyList<int>>();
        using (var reference = MoeTransformer.Load(checkpoint, Model.Layers.ModuleOptions.Cpu32))
            foreach (var r in requests)
            {
                using var engine = new LocalEngine(reference, Batching with { PrefixCaching = false });
                expected[r.Id] = engine.Run([r])[r.Id].Generated;
            }

        var runtime = new RuntimeOptions { ModelDirectory = checkpoint, Batching = Batching };
        string[][] roles = [[NodeRoles.Gateway], [NodeRoles.Attention], [NodeRoles.Expert]];
        var nodes = await InProcessNode.StartClusterAsync(checkpoint, runtime, nodeCount, i => nodeCount == 1 ? runtime : runtime with { Roles = roles[i] });
        try
        {
            var service = await nodes[0].WaitUntilReadyAsync();
            var first = await service.GenerateToEndAsync(requests[0]);
            var second = await service.GenerateToEndAsync(requests[1]);
            Assert.Equal(0, first.CachedPromptTokens);
            Assert.Equal(24, second.CachedPromptTokens);
            Assert.Equal(expected["first"], first.Generated);
            Assert.Equal(expected["second"], second.Generated);

            // The copier arrives while the holder runs: it takes another slot and copies the holder's blocks into it.
            var holder = service.GenerateAsync(requests[2] with { Id = "holder" }).GetAsyncEnumerator();
            Assert.True(await holder.MoveNextAsync());
            var copier = await service.GenerateToEndAsync(requests[3]);
            Assert.Equal(24, copier.CachedPromptTokens);
            Assert.Equal(expected["copier"], copier.Generated);
            SequenceFinished? held = null;
            while (await holder.MoveNextAsync()) held = holder.Current as SequenceFinished ?? held;
            Assert.Equal(expected["holder"], held!.Generated);

            // Layer 1's attention entity stops: the next sequence that reuses a prefix finds that entity's cache empty.
            double reprefills = MoeMetrics.Recoveries.WithLabels("kv_cache_reprefill").Value;
            await StopAttentionEntity(nodes[nodeCount == 1 ? 0 : 1].System, layer: 1);
            var after = await service.GenerateToEndAsync(requests[4]);
            Assert.Equal(expected["after loss"], after.Generated);
            Assert.Equal(0, after.CachedPromptTokens);
            Assert.True(MoeMetrics.Recoveries.WithLabels("kv_cache_reprefill").Value > reprefills);
        }
        finally { foreach (var n in nodes.Reverse()) await n.DisposeAsync(); }
    }

    /// <summary>Stops the entity "{gateway}@L{layer}" under the attention shard region (its KV cache goes with it); the
    /// next step re-creates it empty. One gateway, so one entity's name ends with that layer.</summary>
    static async Task StopAttentionEntity(ActorSystem system, int layer)
    {
        var entity = await system.ActorSelection($"/system/sharding/{Hosting.MoeClusterHosting.AttentionTypeName}/*/*L{layer}").ResolveOne(TimeSpan.FromSeconds(10));
        Assert.EndsWith($"@L{layer}", Uri.UnescapeDataString(entity.Path.Name));
        Assert.True(await entity.GracefulStop(TimeSpan.FromSeconds(10)));
    }
}
