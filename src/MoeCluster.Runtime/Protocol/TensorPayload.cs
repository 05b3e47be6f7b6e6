using System.Runtime.InteropServices;
using MoeCluster.Model.Kernels;
using MoeCluster.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Runtime.Protocol;

/// <summary>
/// A tensor travelling inside an actor message.
///
/// <para><b>The ownership rule</b> (the one rule every actor follows): a sender puts a tensor it owns into a payload
/// with <see cref="Own"/> — the tensor is detached from every dispose scope and from then on belongs to the message.
/// The receiver calls <see cref="Take"/> exactly once and owns the result: called inside a dispose scope, the result
/// belongs to that scope; outside one, the receiver disposes it (or hands it on the same way).
/// Within one process the tensor itself travels, never copied or serialised. When a message crosses to another node,
/// the serializer copies the bytes out and disposes the sender-side tensor: on a remote hop the serializer is the last
/// local owner. A payload whose message is never delivered (dead letters) is released by the tensor's finalizer.</para>
/// </summary>
public sealed class TensorPayload
{
    Tensor? tensor;
    readonly byte[]? bytes;
    bool taken;

    public ScalarType DType { get; }
    public long[] Shape { get; }

    TensorPayload(Tensor t)
    {
        tensor = t;
        DType = t.dtype;
        Shape = t.shape;
    }

    /// <summary>Deserialised form: raw little-endian bytes of a contiguous tensor.</summary>
    public TensorPayload(ScalarType dtype, long[] shape, byte[] data)
    {
        DType = dtype;
        Shape = shape;
        bytes = data;
    }

    /// <summary>Hands <paramref name="t"/> to the message. The caller must not use or dispose it afterwards.</summary>
    public static TensorPayload Own(Tensor t) => new(t.DetachFromDisposeScope());

    /// <summary>The receiver's one call, converting to the receiver's own device and dtype: a cluster may mix
    /// dtypes (float32 gateways, bfloat16 experts), and every node computes in its own, so activations are converted
    /// where they arrive.</summary>
    public Tensor Take(ModuleOptions receiver) => Take(receiver.Device, receiver.DType);

    /// <summary>Returns a tensor the caller owns (on <paramref name="device"/>, as <paramref name="dtype"/> when given).</summary>
    public Tensor Take(Device? device = null, ScalarType? dtype = null)
    {
        lock (this)
        {
            if (taken) throw new InvalidOperationException("tensor payload already taken: a message's tensor has exactly one receiver");
            taken = true;
            // bfloat16 off the wire for a float32 host receiver: widened straight into the receiver's tensor.
            if (tensor is null && bytes is not null && DType == ScalarType.BFloat16 && dtype == ScalarType.Float32 && device is null or { type: DeviceType.CPU })
            {
                var widened = empty(Shape, ScalarType.Float32);
                BFloat16Conversion.Widen(MemoryMarshal.Cast<byte, ushort>(bytes), MemoryMarshal.Cast<byte, float>(widened.bytes));
                return widened;
            }
            var t = tensor ?? FromBytes();
            // The receiver owns what it takes. Inside a dispose scope the sender's (detached) tensor joins that scope,
            // as a tensor the receiver made there would: disposed with it, and referenced until then. Left to the
            // finalizer instead, it could be collected while a TorchSharp call on it is still running (the JIT ends a
            // local's life at its last use, and THSTensor_sizes calls back into managed code mid-call): that race
            // crashed expert nodes in THSTensor_sizes.
            if (tensor is not null) TorchSharp.torch.CurrentDisposeScope?.Attach(t);
            tensor = null;
            if (device is not null && t.device.type != device.type)
            {
                var moved = t.to(device);
                t.Dispose();
                t = moved;
            }
            if (dtype is { } d && t.dtype != d)
            {
                var converted = t.to(d);
                t.Dispose();
                t = converted;
            }
            return t;
        }
    }

    /// <summary>For the serializer: the bytes of the tensor and their dtype; disposes a live sender-side tensor (see the
    /// rule above). With <paramref name="wire"/> a float32 tensor travels in that dtype (bfloat16 halves the bytes;
    /// the receiver converts to its compute dtype on arrival, <see cref="Take(ModuleOptions)"/>).</summary>
    public (byte[] Data, ScalarType DType) ToBytesForWire(ScalarType? wire = null)
    {
        lock (this)
        {
            var target = wire is { } w && DType == ScalarType.Float32 ? w : DType;
            if (bytes is not null && target == DType) return (bytes, DType);
            // A host tensor straight into the frame's bytes (float32 as it is, or rounded to bfloat16 in the same pass).
            if (tensor is { } t && t.device_type == DeviceType.CPU && t.dtype == ScalarType.Float32 && t.is_contiguous()
                && target is ScalarType.Float32 or ScalarType.BFloat16)
            {
                var host = t.bytes;
                byte[] frame;
                if (target == ScalarType.Float32) frame = host.ToArray();
                else
                {
                    frame = new byte[host.Length / 2];
                    BFloat16Conversion.Narrow(MemoryMarshal.Cast<byte, float>(host), MemoryMarshal.Cast<byte, ushort>(frame.AsSpan()));
                }
                t.Dispose();
                tensor = null;
                taken = true;
                return (frame, target);
            }
            using var scope = NewDisposeScope();
            var source = tensor ?? (bytes is not null ? FromBytes() : throw new InvalidOperationException("tensor payload already taken; it cannot be sent again"));
            var cpu = (source.device.type == TorchSharp.DeviceType.CPU ? source : source.cpu()).to(target).contiguous();
            var data = cpu.bytes.ToArray();
            if (tensor is not null)
            {
                tensor.Dispose();
                tensor = null;
                taken = true;
            }
            return (data, target);
        }
    }

    Tensor FromBytes()
    {
        var t = empty(Shape, DType);
        t.bytes = bytes;
        return t;
    }

    public long ByteLength => Shape.Aggregate(1L, (a, b) => a * b) * DType switch
    {
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.BFloat16 or ScalarType.Float16 => 2,
        ScalarType.Int64 or ScalarType.Float64 => 8,
        _ => 1,
    };
}
