using MoeCluster.Model.Layers;
using MoeCluster.TestSupport;
using MoeCluster.Model.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Tests.Training;

public class TrainingForwardSpec
{
    [Theory]
    [MemberData(nameof(TinyModels.All), MemberType = typeof(TinyModels))]
    public void Training_forward_gives_the_inference_logits_at_every_position_of_every_sequence(Architecture a)
    {
        using var model = TinyModels.Random(a);
        using var scope = NewDisposeScope();
        const int B = 3, T = 9;
        var tokens = randint(0, model.Config.VocabSize, [B, T], generator: new Generator(11));
        using var output = TrainingForward.Run(model, tokens);
        var training = output.Logits.view(B, T, -1);

        for (int b = 0; b < B; b++)
        {
            var caches = model.CreateCaches(1, T);
            try
            {
                // Position t's logits come from a prefill of the first t + 1 tokens; one layout segment per prefix.
                for (int t = 0; t < T; t++)
                {
                    foreach (var c in caches) { c.Keys.zero_(); c.Values.zero_(); }
                    var inference = model.Forward(tokens[b].narrow(0, 0, t + 1), StepLayout.Single(0, 0, t + 1), caches)[0];
                    Assert.True(allclose(training[b, t], inference, rtol: 1e-4, atol: 1e-4),
                        $"sequence {b} position {t}: max diff {(training[b, t] - inference).abs().max().item<float>()}");
                }
            }
            finally { foreach (var c in caches) c.Dispose(); }
        }
    }

    [Fact]
    public void Gradients_reach_every_parameter_including_the_router()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        foreach (var p in model.parameters()) p.requires_grad = true;
        using var scope = NewDisposeScope();
        var tokens = randint(0, model.Config.VocabSize, [2, 8], generator: new Generator(5));
        using var output = TrainingForward.Run(model, tokens);
        var loss = TrainingForward.CrossEntropy(output.Logits, tokens) + output.LoadBalancingLoss * 0.01;
        loss.backward();
        var missing = model.named_parameters()
            .Where(p => p.parameter.grad is null || p.parameter.grad.abs().sum().item<float>() == 0)
            .Select(p => p.name).ToList();
        // Experts no token was routed to get no gradient; every other parameter must.
        Assert.DoesNotContain(missing, n => !n.Contains(".experts."));
        Assert.Contains(model.named_parameters(), p => p.name.EndsWith("block_sparse_moe.gate.weight") && p.parameter.grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void Load_balancing_loss_is_one_for_uniform_routing_and_larger_when_routing_concentrates()
    {
        using var model = TinyModels.Random(Architecture.Mixtral);
        using var scope = NewDisposeScope();
        var tokens = randint(0, model.Config.VocabSize, [2, 16], generator: new Generator(9));
        using (no_grad())
            foreach (var layer in model.Layers) layer.Moe!.gate.weight.zero_();
        using (var uniform = TrainingForward.Run(model, tokens))
            Assert.Equal(1.0, uniform.LoadBalancingLoss.item<float>(), 3);

        using (no_grad())
            foreach (var layer in model.Layers)
            {
                // Small noise (against expert 0's 5) on the other experts so the second choice is the router's, not the tie rule's (ties go
                // to the lower expert, which would concentrate the rest on expert 1 at the mean probability of all).
                layer.Moe!.gate.weight.normal_(0, 0.05, generator: new Generator(10));
                layer.Moe!.gate.weight[0].fill_(5.0f);   // expert 0 wins whenever its logit is positive
            }
        using var skewed = TrainingForward.Run(model, tokens);
        Assert.True(skewed.LoadBalancingLoss.item<float>() > 1.05, $"load-balancing loss {skewed.LoadBalancingLoss.item<float>()} for concentrated routing");
    }
}
