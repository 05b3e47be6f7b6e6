using MoeCluster.Runtime.Protocol;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Tests;

/// <summary>The ownership rule of <see cref="TensorPayload"/> on one node, where the sender's tensor itself travels:
/// what a receiver takes inside a dispose scope belongs to that scope, exactly like a tensor it made there. Before,
/// such a tensor belonged to no scope and was freed by its finalizer, which could run while a TorchSharp call on it was
/// still in native code: expert nodes crashed in THSTensor_sizes reading the rows they had just computed.</summary>
public sealed class TensorPayloadSpec
{
    [Fact]
    public void A_tensor_taken_inside_a_dispose_scope_is_disposed_with_that_scope()
    {
        TensorPayload payload;
        using (NewDisposeScope()) payload = TensorPayload.Own(ones(3, 4));   // the sender's scope ends: not the message's tensor
        Tensor taken;
        using (var receiver = NewDisposeScope())
        {
            taken = payload.Take();
            Assert.True(receiver.Contains(taken));
            Assert.Equal(12f, taken.sum().item<float>());
        }
        Assert.True(taken.IsInvalid);
    }

    [Fact]
    public void A_tensor_taken_outside_any_scope_is_the_receivers_to_dispose()
    {
        var payload = TensorPayload.Own(ones(2, 2));
        var taken = payload.Take();
        Assert.False(taken.IsInvalid);
        taken.Dispose();
    }

    [Fact]
    public void A_converted_tensor_taken_inside_a_scope_is_disposed_with_it_and_the_original_at_once()
    {
        var original = ones(2, 2);
        var payload = TensorPayload.Own(original);
        Tensor taken;
        using (NewDisposeScope())
        {
            taken = payload.Take(dtype: ScalarType.BFloat16);
            Assert.Equal(ScalarType.BFloat16, taken.dtype);
            Assert.True(original.IsInvalid);
        }
        Assert.True(taken.IsInvalid);
    }
}
