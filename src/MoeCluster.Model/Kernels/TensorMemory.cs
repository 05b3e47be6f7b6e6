using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace MoeCluster.Model.Kernels;

/// <summary>The address of a CPU tensor's first element, for managed kernels that read or write libtorch's memory in
/// place (TorchSharp's accessors copy, or do not know bfloat16).</summary>
static unsafe class TensorMemory
{
    [DllImport("LibTorchSharp")]
    static extern nint THSTensor_data(nint handle);

    public static void* Data(Tensor t) => (void*)THSTensor_data(t.Handle);

    /// <summary>t's sizes read one dimension at a time. TorchSharp's <c>shape</c> marshals a new array through a
    /// callback on every read (about 2 µs on the benchmark machine), more than a decode-sized kernel's
    /// arithmetic; <c>size(d)</c> is one plain native call, so the kernels' hot paths use <c>size</c> and this.</summary>
    public static long[] Sizes(Tensor t)
    {
        var sizes = new long[t.dim()];
        for (int d = 0; d < sizes.Length; d++) sizes[d] = t.size(d);
        return sizes;
    }
}
