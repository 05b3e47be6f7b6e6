using Akka.Actor;
using Akka.Configuration;
using MoeCluster.Model.Layers;
using MoeCluster.Runtime.Protocol;
using MoeCluster.Runtime.Serialization;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Tests;

/// <summary><c>--wire-dtype bfloat16</c>: float32 activations cross the wire as bfloat16 (half the bytes) and arrive
/// as the receiver's compute dtype, equal to the sender's values rounded to bfloat16; without it nothing changes.</summary>
public sealed class WireDTypeSpec : IDisposable
{
    readonly ActorSystem plain = ActorSystem.Create("wire-plain");
    readonly ActorSystem halved = ActorSystem.Create("wire-bf16", ConfigurationFactory.ParseString($"{TensorMessageSerializer.WireDTypeKey} = bfloat16"));

    public void Dispose()
    {
        plain.Terminate().Wait();
        halved.Terminate().Wait();
    }

    static Tensor Activations() { manual_seed(5); return randn(32, 512); }

    [Fact]
    public void Bfloat16_on_the_wire_halves_the_bytes_and_arrives_rounded_once()
    {
        var asComputed = new TensorMessageSerializer((ExtendedActorSystem)plain);
        var half = new TensorMessageSerializer((ExtendedActorSystem)halved);
        using var x = Activations();
        var full = asComputed.ToBinary(new ComputeExpert("L0.E1", 1, TensorPayload.Own(x.clone())));
        var small = half.ToBinary(new ComputeExpert("L0.E1", 1, TensorPayload.Own(x.clone())));
        // 32·512 values: 4 bytes each as computed, 2 on a bfloat16 wire (plus the same few header bytes).
        Assert.Equal(32 * 512 * 2, full.Length - small.Length);

        var arrived = (ComputeExpert)half.FromBinary(small, half.Manifest(new ComputeExpert("x", 0, TensorPayload.Own(zeros(1, 1)))));
        Assert.Equal(ScalarType.BFloat16, arrived.Input.DType);
        using var asFloat = arrived.Input.Take(ModuleOptions.Cpu32);
        using var expected = x.to(ScalarType.BFloat16).to(ScalarType.Float32);
        Assert.Equal(ScalarType.Float32, asFloat.dtype);
        Assert.True(asFloat.equal(expected).all().item<bool>());

        var same = (ComputeExpert)asComputed.FromBinary(full, "CE");
        using var exact = same.Input.Take(ModuleOptions.Cpu32);
        Assert.True(exact.equal(x).all().item<bool>());
    }

    [Fact]
    public void Only_float32_activations_are_narrowed()
    {
        var half = new TensorMessageSerializer((ExtendedActorSystem)halved);
        using var x = Activations().to(ScalarType.Float16);
        var back = (ExpertComputed)half.FromBinary(half.ToBinary(new ExpertComputed("L0.E1", 2, TensorPayload.Own(x.clone()))), "EC");
        Assert.Equal(ScalarType.Float16, back.Output.DType);
        using var t = back.Output.Take();
        Assert.True(t.equal(x).all().item<bool>());
    }
}
