using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Kernels;

/// <summary>
/// Moves a decode step's rows between the batch and its experts on the host: the gather of an expert's tokens and the
/// combine's weighted accumulation, which TorchSharp does with index tensors, index_select, a multiply and index_add_
/// (index_add_ alone is one small add per routed token inside libtorch). The arithmetic is libtorch's, operation for
/// operation: p = y · w rounded to the dtype, then out = out + p rounded, so the results are bit for bit those of the
/// TorchSharp path (bfloat16 rounds to nearest even, as libtorch's conversion does). float32 and bfloat16, contiguous
/// CPU tensors, one thread (a combine of 32 tokens × top-2 × 512 is 32k multiply-adds: microseconds).
/// Legend: T tokens, n rows of one expert, D hidden.
/// </summary>
public static unsafe class ExpertRows
{
    /// <summary>Whether the host functions take tensors of this dtype at all.</summary>
    public static bool Supports(ScalarType dtype) => dtype is ScalarType.Float32 or ScalarType.BFloat16;

    /// <summary>x [T, D] → its rows at <paramref name="tokens"/>: [n, D], a new tensor.</summary>
    public static Tensor Gather(Tensor x, IReadOnlyList<long> tokens)
    {
        if (!Supports(x.dtype) || x.device_type != DeviceType.CPU || x.dim() != 2) throw new ArgumentException($"cannot gather rows of a {x.dtype} [{string.Join(", ", x.shape)}] tensor on {x.device}");
        using var xc = x.contiguous();
        long T = x.size(0), D = x.size(1), bytes = D * x.ElementSize;
        var rows = empty([tokens.Count, D], x.dtype, CPU);
        byte* from = (byte*)TensorMemory.Data(xc), to = (byte*)TensorMemory.Data(rows);
        for (int i = 0; i < tokens.Count; i++)
        {
            long t = tokens[i];
            if ((ulong)t >= (ulong)T) throw new ArgumentOutOfRangeException(nameof(tokens), $"token {t} outside a batch of {T}");
            Buffer.MemoryCopy(from + t * bytes, to + i * bytes, bytes, bytes);
        }
        return rows;
    }

    /// <summary>output[tokens[i]] += weights[i] · y[i] for each row i of y [n, D], in order; output [T, D] is changed
    /// in place (contiguous, y's dtype). Weights must be values of the dtype (they are rounded like y · w otherwise).</summary>
    public static void Accumulate(Tensor output, IReadOnlyList<long> tokens, IReadOnlyList<float> weights, Tensor y, KernelPath path = KernelPath.Vector512)
    {
        Check(output, y, tokens.Count);
        using var yc = y.contiguous();
        long T = output.size(0);
        int D = (int)output.size(1);
        bool bf16 = output.dtype == ScalarType.BFloat16;
        byte* o = (byte*)TensorMemory.Data(output), src = (byte*)TensorMemory.Data(yc);
        int es = bf16 ? 2 : 4;
        for (int i = 0; i < tokens.Count; i++)
        {
            long t = tokens[i];
            if ((ulong)t >= (ulong)T) throw new ArgumentOutOfRangeException(nameof(tokens), $"token {t} outside a batch of {T}");
            Row(o + t * D * es, src + (long)i * D * es, weights[i], scale: true, D, bf16, path);
        }
    }

    /// <summary>output += other, elementwise and in place (both [T, D], the same dtype).</summary>
    public static void Add(Tensor output, Tensor other, KernelPath path = KernelPath.Vector512)
    {
        Check(output, other, (int)output.size(0));
        using var oc = other.contiguous();
        int T = (int)output.size(0), D = (int)output.size(1);
        bool bf16 = output.dtype == ScalarType.BFloat16;
        int es = bf16 ? 2 : 4;
        byte* o = (byte*)TensorMemory.Data(output), src = (byte*)TensorMemory.Data(oc);
        for (int t = 0; t < T; t++) Row(o + (long)t * D * es, src + (long)t * D * es, 1f, scale: false, D, bf16, path);
    }

    static void Check(Tensor output, Tensor y, int rows)
    {
        if (!Supports(output.dtype) || output.device_type != DeviceType.CPU || !output.is_contiguous() || output.dim() != 2
            || y.dtype != output.dtype || y.device_type != DeviceType.CPU || y.dim() != 2 || y.size(0) != rows || y.size(1) != output.size(1))
            throw new ArgumentException($"cannot accumulate {y.dtype} [{string.Join(", ", y.shape)}] ({rows} rows expected) into {output.dtype} [{string.Join(", ", output.shape)}]");
    }

    /// <summary>o[d] = R(o[d] + R(y[d] · w)) for d &lt; D, R the rounding to the dtype; without scale o[d] = R(o[d] + y[d]).</summary>
    static void Row(byte* o, byte* y, float w, bool scale, int D, bool bf16, KernelPath path)
    {
        int d = 0;
        if (path == KernelPath.Vector512 && Vector512.IsHardwareAccelerated)
        {
            var wv = Vector512.Create(w);
            if (!bf16)
            {
                float* of = (float*)o, yf = (float*)y;
                for (; d + 16 <= D; d += 16)
                {
                    var p = Vector512.Load(yf + d);
                    if (scale) p *= wv;
                    (Vector512.Load(of + d) + p).Store(of + d);
                }
            }
            else
            {
                ushort* ob = (ushort*)o, yb = (ushort*)y;
                for (; d + 32 <= D; d += 32)
                {
                    var (ylo, yhi) = Widen(Vector512.Load(yb + d));
                    var (olo, ohi) = Widen(Vector512.Load(ob + d));
                    if (scale) { ylo = Narrowed(ylo * wv); yhi = Narrowed(yhi * wv); }
                    Round(olo + ylo, ohi + yhi).Store(ob + d);
                }
            }
        }
        for (; d < D; d++)
        {
            if (!bf16)
            {
                float p = ((float*)y)[d];
                if (scale) p *= w;
                ((float*)o)[d] += p;
            }
            else
            {
                float p = BFloat16Bits.Widen(((ushort*)y)[d]);
                if (scale) p = BFloat16Bits.Rounded(p * w);
                ((ushort*)o)[d] = BFloat16Bits.Round(BFloat16Bits.Widen(((ushort*)o)[d]) + p);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static (Vector512<float>, Vector512<float>) Widen(Vector512<ushort> b)
    {
        var (lo, hi) = Vector512.Widen(b);
        return ((lo << 16).AsSingle(), (hi << 16).AsSingle());
    }

    /// <summary>v rounded to bfloat16 and widened back (the product's rounding before the add).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Narrowed(Vector512<float> v) => (RoundBits(v) << 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<ushort> Round(Vector512<float> lo, Vector512<float> hi) => Vector512.Narrow(RoundBits(lo), RoundBits(hi));

    /// <summary>bfloat16 bits of each lane in the low half, round to nearest even, NaN as the quiet NaN 0x7FC0 — what
    /// <see cref="BFloat16Bits.Round"/> does one value at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<uint> RoundBits(Vector512<float> v)
    {
        var bits = v.AsUInt32();
        var rounded = (bits + Vector512.Create(0x7FFFu) + ((bits >> 16) & Vector512.Create(1u))) >> 16;
        var nan = ~Vector512.Equals(v, v).AsUInt32();
        return Vector512.ConditionalSelect(nan, Vector512.Create(0x7FC0u), rounded);
    }
}
