using MoeCluster.Model;
using MoeCluster.Model.Generation;
using MoeCluster.Runtime;
using MoeCluster.TestSupport;

namespace MoeCluster.Runtime.Tests;

/// <summary>Issue 10.6: a cluster may mix dtypes (values-production.yaml runs float32 gateways with bfloat16 experts).
/// Every node computes in its own dtype and converts activations to it where they arrive, so both mixes serve, and
/// their logits stay within bfloat16's rounding of the all-float32 model's.</summary>
public class MixedPrecisionSpec
{
    static readonly BatchingOptions Batching = new() { MaxBatchSize = 4, ContextLength = 64, MaxPrefillTokensPerStep = 16 };
    static readonly int[] Prompt = [4, 8, 15, 16, 23, 42];

    [Theory]
    [InlineData("float32", "bfloat16")]
    [InlineData("bfloat16", "float32")]
    public async Task A_gateway_and_expert_nodes_of_different_dtypes_serve_with_the_float32_logits_to_bfloat16_precision(string gatewayDType, string expertDType)
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        var checkpoint = TinyCheckpoint.Write(model);
        var reference = new Dictionary<string, float[]>();
        using (var f32 = MoeTransformer.Load(checkpoint, Model.Layers.ModuleOptions.Cpu32))
        using (var engine = new LocalEngine(f32, Batching))
            engine.Run([new GenerationRequest("ref", Prompt, 4) { ReturnPromptLogits = true }], e => { if (e is PromptLogits l) reference["ref"] = l.Logits; });

        var runtime = new RuntimeOptions { ModelDirectory = checkpoint, Batching = Batching };
        // Node 0: gateway + attention; node 1: experts only, so every expert call crosses the wire between dtypes.
        var nodes = await InProcessNode.StartClusterAsync(checkpoint, runtime, 2, i => i == 0
            ? runtime with { Roles = [NodeRoles.Gateway, NodeRoles.Attention], DType = gatewayDType }
            : runtime with { Roles = [NodeRoles.Expert], DType = expertDType });
        try
        {
            var service = await nodes[0].WaitUntilReadyAsync();
            float[]? logits = null;
            SequenceFinished? finished = null;
            await foreach (var e in service.GenerateAsync(new GenerationRequest("mixed", Prompt, 6) { ReturnPromptLogits = true }))
            {
                if (e is PromptLogits l) logits = l.Logits;
                if (e is SequenceFinished f) finished = f;
            }
            Assert.NotNull(finished);
            Assert.Equal(FinishReason.Length, finished!.Reason);
            Assert.Equal(6, finished.Generated.Count);
            Assert.NotNull(logits);
            var expected = reference["ref"];
            double scale = expected.Max(Math.Abs);
            double worst = expected.Zip(logits!, (a, b) => Math.Abs(a - b)).Max();
            // bfloat16 keeps 8 significant bits (~0.4 % per rounding); through two layers a few percent of the
            // largest logit bounds the drift, while a wrong conversion (bytes read as the other dtype) is far off.
            Assert.True(worst < 0.08 * scale, $"max |logit difference| {worst:F4} vs largest logit {scale:F4}");
            Assert.True(worst > 0, "the bfloat16 node must really compute in bfloat16");
        }
        finally { foreach (var n in nodes.Reverse()) await n.DisposeAsync(); }
    }
}
