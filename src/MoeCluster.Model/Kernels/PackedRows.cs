using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace MoeCluster.Model.Kernels;

/// <summary>How a managed kernel reads a tensor through a raw pointer: as evenly spaced rows of packed elements.</summary>
static unsafe class PackedRows
{
    /// <summary>Null where x already is <paramref name="rows"/> evenly spaced rows of <paramref name="width"/> packed
    /// elements (any view of that, as q/k/v narrowed from one fused projection are: no new tensor, no copy); otherwise
    /// a contiguous copy. <paramref name="stride"/>: elements from one row to the next.</summary>
    public static Tensor? Of(Tensor x, int rows, int width, out long stride)
    {
        int dims = (int)x.dim();   // size and stride one dimension at a time: shape and stride() marshal arrays (TensorMemory.Sizes)
        long packed = 1;
        bool rowsOfPacked = dims >= 1 && x.size(0) == rows;
        for (int d = dims - 1; d >= 1 && rowsOfPacked; d--)
        {
            long size = x.size(d);
            rowsOfPacked = size == 1 || x.stride(d) == packed;
            packed *= size;
        }
        if (rowsOfPacked && packed == width)
        {
            stride = x.stride(0);
            return null;
        }
        var copy = x.reshape(rows, width).contiguous();
        stride = width;
        return copy;
    }

    /// <summary>The address of t's first element (its storage offset applied).</summary>
    public static byte* Data(Tensor t) => (byte*)TensorMemory.Data(t);
}
