using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using MoeCluster.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace MoeCluster.Model.Kernels;

/// <summary>The geometry of one attention layer as <see cref="DecodeAttention"/> needs it.</summary>
public readonly record struct AttentionShape(int Heads, int KvHeads, int HeadDim, int? SlidingWindow)
{
    /// <summary>r, the query heads that share one kv head.</summary>
    public int Group => Heads / KvHeads;
}

/// <summary>
/// The attention of a pure-decode step (one new token per sequence) in one pass per (sequence, kv head) pair: rotary on
/// the new query and key, the key and value written into the KV cache in place, scores against that sequence's own
/// visible keys only (its length, its sliding window — no padding to the longest sequence, no gathered copy of the
/// cache), softmax in float32, P·V. The TorchSharp path it replaces runs about 25 small ops per layer for the same work
/// (cache writes by index_put_, an index_select of every padded cache, two batched matmuls, a masked float32 softmax
/// with casts), each a dispatch and a pass over memory; here the step reads the visible keys and values once.
/// float32 and bfloat16; for bfloat16 the rotary, the scores, the probabilities and the output are rounded where the
/// TorchSharp path rounds them, sums are float32 (in another order than libtorch's, so float32 results differ from it by
/// summation order, bfloat16 ones by at most a rounding step of the scores or the output).
/// Legend: B sequences, H heads, G kv heads, r = H/G, Dh head dim, n keys a sequence sees, C cache capacity.
/// </summary>
public static unsafe class DecodeAttention
{
    /// <summary>Off: decode steps take the TorchSharp path (set with MOECLUSTER_DECODE_ATTENTION=0 for A/B runs).</summary>
    public static bool Enabled { get; set; } = Environment.GetEnvironmentVariable("MOECLUSTER_DECODE_ATTENTION") != "0";

    static readonly ThreadSwitch onThisThread = new();

    /// <summary>Sends this thread's decode steps to the TorchSharp path until disposed (A/B comparisons in one process).</summary>
    public static IDisposable OffOnThisThread() => onThisThread.Off();

    /// <summary>Whether the kernel takes this step's queries against <paramref name="cache"/>.</summary>
    public static bool Applies(Tensor q, KvCache cache) => Enabled && !onThisThread.IsOff && Supports(q, cache);

    /// <summary>The device and dtype conditions alone: CPU, float32 or bfloat16 throughout, no gradient wanted.</summary>
    public static bool Supports(Tensor q, KvCache cache) =>
        q.device_type == DeviceType.CPU && cache.Keys.device_type == DeviceType.CPU
        && (q.dtype == ScalarType.Float32 || q.dtype == ScalarType.BFloat16) && cache.Keys.dtype == q.dtype
        && !(is_grad_enabled() && q.requires_grad);

    /// <summary>The AVX-512 loops where the machine has them and whole 32-element chunks fit a head; the scalar loop otherwise.</summary>
    public static KernelPath DefaultPath(int headDim) =>
        Vector512.IsHardwareAccelerated && headDim % 32 == 0 ? KernelPath.Vector512 : KernelPath.Scalar;

    /// <summary>Multiply-adds below which one thread does the whole step (waking a second costs more than it saves).</summary>
    const long WorkPerThread = 1 << 15;

    /// <summary>q [B, H·Dh], k and v [B, G·Dh] (any views with unit stride along a head) of the step's tokens, the
    /// rotary rows cos and sign-folded sin [B, 1, Dh] (<see cref="StepContext"/>) → [B, H·Dh] in q's dtype. Writes the
    /// rotated keys and the values at each sequence's position first.</summary>
    public static Tensor Run(Tensor q, Tensor k, Tensor v, Tensor cos, Tensor sin, StepLayout layout, KvCache cache,
        AttentionShape shape, KernelPath? path = null)
    {
        int B = layout.Segments.Count, H = shape.Heads, G = shape.KvHeads, Dh = shape.HeadDim, r = shape.Group;
        var loops = path ?? DefaultPath(Dh);
        if (!layout.IsPureDecode) throw new ArgumentException("DecodeAttention takes pure-decode steps only (one token per sequence)");
        if (loops == KernelPath.Vector512 && Dh % 32 != 0) throw new ArgumentException($"the Vector512 loops need a head dim that is a multiple of 32, got {Dh}");
        if (!Supports(q, cache) || k.dtype != q.dtype || v.dtype != q.dtype || cos.dtype != q.dtype || sin.dtype != q.dtype)
            throw new ArgumentException($"DecodeAttention cannot take {q.dtype} queries against a {cache.Keys.dtype} cache on {q.device_type}");
        if (cache.Keys.shape[1] != G || cache.Keys.shape[3] != Dh || !cache.Keys.is_contiguous() || !cache.Values.is_contiguous())
            throw new ArgumentException($"KV cache [{string.Join(", ", cache.Keys.shape)}] does not hold {G} kv heads of {Dh}");
        cache.Validate(layout);

        using var qr = Rows(q, B, H * Dh);
        using var kr = Rows(k, B, G * Dh);
        using var vr = Rows(v, B, G * Dh);
        using var cosr = Rows(cos, B, Dh);
        using var sinr = Rows(sin, B, Dh);
        var output = empty([B, H * Dh], q.dtype, CPU);

        var sequences = new Sequence[B];
        int longest = 0;
        for (int b = 0; b < B; b++)
        {
            var s = layout.Segments[b];
            int first = shape.SlidingWindow is int w ? Math.Max(0, s.End - w) : 0;
            sequences[b] = new Sequence(s.Slot, s.Start, first);
            longest = Math.Max(longest, s.End - first);
        }
        // Work before each (b, g) pair, in multiply-adds, so the threads split the keys rather than the pairs.
        var before = new long[B * G + 1];
        for (int pair = 0; pair < B * G; pair++)
            before[pair + 1] = before[pair] + (long)sequences[pair / G].Keys * r * Dh * 2;
        int threads = (int)Math.Min(Math.Min(OmpTeam.Available ? get_num_threads() : 1, B * G), Math.Max(1, before[^1] / WorkPerThread));

        int perThread = Scratch.Floats(r, Dh, longest);
        float* scratch = (float*)NativeMemory.AlignedAlloc((nuint)((long)perThread * threads * sizeof(float)), 64);
        try
        {
            var call = new Call(new Operands(Data(qr), qr.stride(0), Data(kr), kr.stride(0), Data(vr), vr.stride(0),
                    Data(cosr), cosr.stride(0), Data(sinr), sinr.stride(0), Data(cache.Keys), Data(cache.Values), Data(output)),
                sequences, before, G, r, Dh, cache.Capacity, q.dtype == ScalarType.BFloat16, (float)(1.0 / Math.Sqrt(Dh)),
                loops, scratch, perThread);
            OmpTeam.Run(call, threads);
            GC.KeepAlive(cache);
        }
        finally { NativeMemory.AlignedFree(scratch); }
        return output;
    }

    /// <summary>x as [rows, width] with unit stride along width (a view where x allows one).</summary>
    static Tensor Rows(Tensor x, int rows, int width)
    {
        var r = x.reshape(rows, width);
        if (r.stride(1) == 1) return r;
        using (r) return r.contiguous();
    }

    [DllImport("LibTorchSharp")]
    static extern nint THSTensor_data(nint handle);

    static byte* Data(Tensor t) => (byte*)THSTensor_data(t.Handle);

    /// <summary>One sequence of the step: its cache slot, the position of its new token, the first key it sees.</summary>
    readonly record struct Sequence(int Slot, int Position, int First)
    {
        public int Keys => Position + 1 - First;
    }

    /// <summary>Raw pointers of one call; row strides in elements.</summary>
    readonly struct Operands(byte* q, long qStride, byte* k, long kStride, byte* v, long vStride,
        byte* cos, long cosStride, byte* sin, long sinStride, byte* keys, byte* values, byte* output)
    {
        public readonly byte* Q = q, K = k, V = v, Cos = cos, Sin = sin, Keys = keys, Values = values, Output = output;
        public readonly long QStride = qStride, KStride = kStride, VStride = vStride, CosStride = cosStride, SinStride = sinStride;
    }

    /// <summary>A thread's working memory: the r rotated queries [r, Dh], the P·V sums [r, Dh], the scores [r, n].</summary>
    static class Scratch
    {
        public static int Floats(int r, int Dh, int keys) => 2 * Round16(r * Dh) + Round16(r * keys);
        public static int Round16(int n) => (n + 15) & ~15;
    }

    sealed class Call(Operands o, Sequence[] sequences, long[] before, int G, int r, int Dh, int C, bool bf16, float scale,
        KernelPath path, float* scratch, int perThread) : IParallelWork
    {
        readonly int es = bf16 ? 2 : 4;

        /// <summary>Thread t of n takes the pairs whose work starts in the t-th n-th of the step's work.</summary>
        public void Run(int thread, int threads)
        {
            long total = before[^1];
            int from = Start(total * thread / threads), to = thread == threads - 1 ? before.Length - 1 : Start(total * (thread + 1) / threads);
            float* s = scratch + (long)thread * perThread;
            for (int pair = from; pair < to; pair++)
            {
                if (path == KernelPath.Scalar) Pair<PlainRows>(pair / G, pair % G, s);
                else if (bf16) Pair<BFloat16Rows>(pair / G, pair % G, s);
                else Pair<Float32Rows>(pair / G, pair % G, s);
            }
        }

        /// <summary>The first pair whose work starts at or after <paramref name="work"/>.</summary>
        int Start(long work)
        {
            int i = Array.BinarySearch(before, 0, before.Length - 1, work);
            if (i < 0) return ~i;
            while (i > 0 && before[i - 1] == work) i--;
            return i;
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Pair<TRows>(int b, int g, float* s) where TRows : IWeightRows
        {
            var seq = sequences[b];
            int n = seq.Keys;
            long rowBytes = (long)Dh * es;
            byte* keyRows = o.Keys + ((long)seq.Slot * G + g) * C * rowBytes;       // [C, Dh] of (slot, g)
            byte* valueRows = o.Values + ((long)seq.Slot * G + g) * C * rowBytes;
            byte* cos = o.Cos + b * o.CosStride * es, sin = o.Sin + b * o.SinStride * es;
            float* queries = s, sums = s + Scratch.Round16(r * Dh), scores = sums + Scratch.Round16(r * Dh);

            // This step's key and value go into the cache first: the token sees itself.
            byte* key = keyRows + seq.Position * rowBytes;
            byte* newKey = o.K + (b * o.KStride + (long)g * Dh) * es;
            for (int d = 0; d < Dh; d++) Write(key, d, Rotated(newKey, cos, sin, d));
            Buffer.MemoryCopy(o.V + (b * o.VStride + (long)g * Dh) * es, valueRows + seq.Position * rowBytes, rowBytes, rowBytes);
            for (int j = 0; j < r; j++)
            {
                byte* query = o.Q + (b * o.QStride + (long)(g * r + j) * Dh) * es;
                for (int d = 0; d < Dh; d++) queries[j * Dh + Chunked<TRows>(d)] = Rotated(query, cos, sin, d);
            }

            byte* visible = keyRows + seq.First * rowBytes;
            for (int l = 0; l < n; l++)
                for (int j = 0; j < r; j++)
                {
                    float dot = Dot<TRows>(queries + j * Dh, visible + l * rowBytes);
                    // bfloat16: the matmul rounds its result, then the product with the scale rounds again.
                    scores[j * n + l] = bf16 ? BFloat16(BFloat16(dot) * scale) : dot * scale;
                }
            for (int j = 0; j < r; j++) Softmax(scores + j * n, n);

            new Span<float>(sums, r * Dh).Clear();
            visible = valueRows + seq.First * rowBytes;
            for (int l = 0; l < n; l++) Accumulate<TRows>(sums, scores + l, n, visible + l * rowBytes);

            byte* output = o.Output + ((long)b * G * r + (long)g * r) * Dh * es;
            for (int j = 0; j < r; j++)
                for (int d = 0; d < Dh; d++) Write(output, j * Dh + d, sums[j * Dh + Chunked<TRows>(d)]);
        }

        /// <summary>Element d of a head rotated as <see cref="RotaryEmbedding.Apply(Tensor, Tensor, Tensor)"/> does:
        /// x·cos + roll(x, Dh/2)·sin′ (separate products, no fused multiply-add, as libtorch's addcmul); in bfloat16 the
        /// first product is rounded, then the sum.</summary>
        float Rotated(byte* x, byte* cos, byte* sin, int d)
        {
            float a = Read(x, d) * Read(cos, d), b = Read(x, (d + Dh / 2) % Dh) * Read(sin, d);
            return bf16 ? BFloat16(BFloat16(a) + b) : a + b;
        }

        /// <summary>q (chunked as TRows loads a row) · one cached row.</summary>
        float Dot<TRows>(float* q, byte* row) where TRows : IWeightRows
        {
            if (typeof(TRows) == typeof(PlainRows))
            {
                float sum = 0;
                for (int d = 0; d < Dh; d++) sum += q[d] * Read(row, d);
                return sum;
            }
            Vector512<float> s0 = default, s1 = default;
            for (int c = 0; c < Dh; c += 32)
            {
                TRows.Load(row, c, out var a, out var b);
                s0 = Vector512.FusedMultiplyAdd(a, Vector512.Load(q + c), s0);
                s1 = Vector512.FusedMultiplyAdd(b, Vector512.Load(q + c + 16), s1);
            }
            return Vector512.Sum(s0 + s1);
        }

        /// <summary>sums[j] += p[j·n] · row for every head j of the group (p points at one key's column of the scores).</summary>
        void Accumulate<TRows>(float* sums, float* p, int n, byte* row) where TRows : IWeightRows
        {
            if (typeof(TRows) == typeof(PlainRows))
            {
                for (int d = 0; d < Dh; d++)
                {
                    float value = Read(row, d);
                    for (int j = 0; j < r; j++) sums[j * Dh + d] += p[j * n] * value;
                }
                return;
            }
            for (int c = 0; c < Dh; c += 32)
            {
                TRows.Load(row, c, out var a, out var b);
                for (int j = 0; j < r; j++)
                {
                    var pj = Vector512.Create(p[j * n]);
                    float* at = sums + j * Dh + c;
                    Vector512.FusedMultiplyAdd(a, pj, Vector512.Load(at)).Store(at);
                    Vector512.FusedMultiplyAdd(b, pj, Vector512.Load(at + 16)).Store(at + 16);
                }
            }
        }

        /// <summary>Softmax in float32 over one head's n scores, in place; bfloat16 rounds the probabilities (the
        /// TorchSharp path casts them back before P·V).</summary>
        void Softmax(float* x, int n)
        {
            float max = float.NegativeInfinity;
            for (int i = 0; i < n; i++) max = Math.Max(max, x[i]);
            float sum = 0;
            int v = path == KernelPath.Vector512 ? n & ~15 : 0;
            var vmax = Vector512.Create(max);
            var vsum = Vector512<float>.Zero;
            for (int i = 0; i < v; i += 16)
            {
                var e = Vector512.Exp(Vector512.Load(x + i) - vmax);
                e.Store(x + i);
                vsum += e;
            }
            sum = Vector512.Sum(vsum);
            for (int i = v; i < n; i++) { x[i] = MathF.Exp(x[i] - max); sum += x[i]; }
            for (int i = 0; i < n; i++) x[i] = bf16 ? BFloat16(x[i] / sum) : x[i] / sum;
        }

        float Read(byte* p, int i) => bf16 ? BFloat16Bits.Widen(((ushort*)p)[i]) : ((float*)p)[i];

        void Write(byte* p, int i, float value)
        {
            if (bf16) ((ushort*)p)[i] = BFloat16Bits.Round(value);
            else ((float*)p)[i] = value;
        }

        /// <summary>Where element d of a head sits in the layout TRows loads (the plain order for the scalar loop).</summary>
        static int Chunked<TRows>(int d) where TRows : IWeightRows => (d & ~31) + TRows.Slot(d & 31);

        static float BFloat16(float v) => BFloat16Bits.Widen(BFloat16Bits.Round(v));
    }
}

/// <summary>The scalar loop's layout: elements in their own order (never loaded as vectors).</summary>
readonly struct PlainRows : IWeightRows
{
    public static int ElementSize => 4;

    public static unsafe void Load(byte* row, int c, out Vector512<float> a, out Vector512<float> b) =>
        throw new NotSupportedException("the scalar loop reads elements one by one");

    public static int Slot(int k) => k;
}
