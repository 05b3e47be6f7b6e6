using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
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
        if (cache.Keys.size(1) != G || cache.Keys.size(3) != Dh || !cache.Keys.is_contiguous() || !cache.Values.is_contiguous())
            throw new ArgumentException($"KV cache [{string.Join(", ", cache.Keys.shape)}] does not hold {G} kv heads of {Dh}");
        cache.Validate(layout);

        using var qr = Rows(q, B, H * Dh, out long qStride);
        using var kr = Rows(k, B, G * Dh, out long kStride);
        using var vr = Rows(v, B, G * Dh, out long vStride);
        using var cosr = Rows(cos, B, Dh, out long cosStride);
        using var sinr = Rows(sin, B, Dh, out long sinStride);
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
            var call = new Call(new Operands(Data(qr ?? q), qStride, Data(kr ?? k), kStride, Data(vr ?? v), vStride,
                    Data(cosr ?? cos), cosStride, Data(sinr ?? sin), sinStride, Data(cache.Keys), Data(cache.Values), Data(output)),
                sequences, before, G, r, Dh, cache.Capacity, q.dtype == ScalarType.BFloat16, (float)(1.0 / Math.Sqrt(Dh)),
                loops, scratch, perThread);
            OmpTeam.Run(call, threads);
            GC.KeepAlive(cache);
        }
        finally { NativeMemory.AlignedFree(scratch); }
        return output;
    }

    static Tensor? Rows(Tensor x, int rows, int width, out long stride) => PackedRows.Of(x, rows, width, out stride);

    static byte* Data(Tensor t) => PackedRows.Data(t);

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

    /// <summary>A thread's working memory: the r rotated queries [r, Dh], the P·V sums [r, Dh], the scores [r, n], one
    /// rotated head in the compute dtype.</summary>
    static class Scratch
    {
        public static int Floats(int r, int Dh, int keys) => 2 * Round16(r * Dh) + Round16(r * keys) + Round16(Dh);
        public static int Round16(int n) => (n + 15) & ~15;
    }

    sealed class Call(Operands o, Sequence[] sequences, long[] before, int G, int r, int Dh, int C, bool bf16, float scale,
        KernelPath path, float* scratch, int perThread) : IParallelWork
    {
        readonly int es = bf16 ? 2 : 4;

        /// <summary>Thread t of n takes the pairs whose work starts in the t-th n-th of the step's work.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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
            byte* rotated = (byte*)(scores + Scratch.Round16(r * n));                // one head in the compute dtype

            // This step's key and value go into the cache first: the token sees itself.
            Rotate(o.K + (b * o.KStride + (long)g * Dh) * es, cos, sin, keyRows + seq.Position * rowBytes);
            Buffer.MemoryCopy(o.V + (b * o.VStride + (long)g * Dh) * es, valueRows + seq.Position * rowBytes, rowBytes, rowBytes);
            for (int j = 0; j < r; j++)
            {
                Rotate(o.Q + (b * o.QStride + (long)(g * r + j) * Dh) * es, cos, sin, rotated);
                Unpack<TRows>(rotated, queries + j * Dh);
            }

            Scores<TRows>(queries, keyRows + seq.First * rowBytes, n, scores);
            for (int j = 0; j < r; j++) Softmax(scores + j * n, n);
            Weighted<TRows>(scores, valueRows + seq.First * rowBytes, n, sums);
            Pack<TRows>(sums, o.Output + ((long)b * G * r + (long)g * r) * Dh * es);
        }

        /// <summary>One head x rotated into dst in the compute dtype, element by element as <see cref="Rotated"/>, 16 lanes
        /// at a time on the vector path (Dh/2 is then a multiple of 16, so the rolled half is a contiguous load).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Rotate(byte* x, byte* cos, byte* sin, byte* dst)
        {
            if (path == KernelPath.Scalar)
            {
                for (int d = 0; d < Dh; d++) Write(dst, d, Rotated(x, cos, sin, d));
                return;
            }
            int half = Dh / 2;
            for (int d = 0; d < Dh; d += 16)
            {
                var a = Load16(x, d) * Load16(cos, d);
                var b = Load16(x, d < half ? d + half : d - half) * Load16(sin, d);
                var v = bf16 ? BFloat16(BFloat16(a) + b) : a + b;
                if (bf16) BFloat16Bits.Store(v, (ushort*)dst + d);
                else v.Store((float*)dst + d);
            }
        }

        /// <summary>Elements [d, d+16) as float32.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        Vector512<float> Load16(byte* p, int d) => Elements.Load(p, d, bf16);

        /// <summary>A head in the compute dtype → float32 in the layout TRows loads rows in (what Dot pairs with).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Unpack<TRows>(byte* head, float* dst) where TRows : IWeightRows
        {
            if (typeof(TRows) == typeof(PlainRows))
            {
                for (int d = 0; d < Dh; d++) dst[d] = Read(head, d);
                return;
            }
            for (int c = 0; c < Dh; c += 32)
            {
                TRows.Load(head, c, out var a, out var b);
                a.Store(dst + c);
                b.Store(dst + c + 16);
            }
        }

        /// <summary>The group's P·V sums (TRows layout) → the output heads in the compute dtype, one rounding each. For
        /// bfloat16 a = the even elements, b = the odd ones, so rounding both and joining each lane's two halves restores
        /// the order (the inverse of <see cref="BFloat16Rows.Load"/>).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Pack<TRows>(float* sums, byte* output) where TRows : IWeightRows
        {
            if (typeof(TRows) == typeof(PlainRows))
            {
                for (int i = 0; i < r * Dh; i++) Write(output, i, sums[i]);
                return;
            }
            for (int c = 0; c < r * Dh; c += 32)
            {
                var a = Vector512.Load(sums + c);
                var b = Vector512.Load(sums + c + 16);
                if (!bf16) { a.Store((float*)output + c); b.Store((float*)output + c + 16); continue; }
                var even = BFloat16(a).AsUInt32() >> 16;
                var odd = BFloat16(b).AsUInt32();
                (odd | even).Store((uint*)((ushort*)output + c));
            }
        }

        /// <summary>Element d of a head rotated as <see cref="RotaryEmbedding.Apply(Tensor, Tensor, Tensor)"/> does:
        /// x·cos + roll(x, Dh/2)·sin′ (separate products, no fused multiply-add, as libtorch's addcmul); in bfloat16 the
        /// first product is rounded, then the sum.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        float Rotated(byte* x, byte* cos, byte* sin, int d)
        {
            float a = Read(x, d) * Read(cos, d), b = Read(x, d < Dh / 2 ? d + Dh / 2 : d - Dh / 2) * Read(sin, d);
            return bf16 ? BFloat16(BFloat16(a) + b) : a + b;
        }

        /// <summary>scores[j·n + l] = q_j · key l for the group's heads: four heads per pass over the keys, so each key
        /// chunk is loaded once for four products and the four sums are reduced together.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Scores<TRows>(float* queries, byte* keys, int n, float* scores) where TRows : IWeightRows
        {
            long rowBytes = (long)Dh * es;
            int j = 0;
            if (typeof(TRows) != typeof(PlainRows))
                for (; j + 4 <= r; j += 4)
                {
                    float* q0 = queries + j * Dh, q1 = q0 + Dh, q2 = q1 + Dh, q3 = q2 + Dh;
                    for (int l = 0; l < n; l++)
                    {
                        byte* row = keys + l * rowBytes;
                        Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
                        for (int c = 0; c < Dh; c += 32)
                        {
                            TRows.Load(row, c, out var a, out var b);
                            s0 = Vector512.FusedMultiplyAdd(b, Vector512.Load(q0 + c + 16), Vector512.FusedMultiplyAdd(a, Vector512.Load(q0 + c), s0));
                            s1 = Vector512.FusedMultiplyAdd(b, Vector512.Load(q1 + c + 16), Vector512.FusedMultiplyAdd(a, Vector512.Load(q1 + c), s1));
                            s2 = Vector512.FusedMultiplyAdd(b, Vector512.Load(q2 + c + 16), Vector512.FusedMultiplyAdd(a, Vector512.Load(q2 + c), s2));
                            s3 = Vector512.FusedMultiplyAdd(b, Vector512.Load(q3 + c + 16), Vector512.FusedMultiplyAdd(a, Vector512.Load(q3 + c), s3));
                        }
                        var sum = Sum4(s0, s1, s2, s3);
                        scores[j * n + l] = sum[0];
                        scores[(j + 1) * n + l] = sum[1];
                        scores[(j + 2) * n + l] = sum[2];
                        scores[(j + 3) * n + l] = sum[3];
                    }
                }
            for (; j < r; j++)
                for (int l = 0; l < n; l++) scores[j * n + l] = Dot<TRows>(queries + j * Dh, keys + l * rowBytes);
        }

        /// <summary>The four horizontal sums as one vector: two halvings, then three horizontal adds for all four.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector128<float> Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d)
        {
            if (!Avx.IsSupported) return Vector128.Create(Vector512.Sum(a), Vector512.Sum(b), Vector512.Sum(c), Vector512.Sum(d));
            var h = Avx.HorizontalAdd(Avx.HorizontalAdd(a.GetLower() + a.GetUpper(), b.GetLower() + b.GetUpper()),
                Avx.HorizontalAdd(c.GetLower() + c.GetUpper(), d.GetLower() + d.GetUpper()));
            return h.GetLower() + h.GetUpper();
        }

        /// <summary>q (chunked as TRows loads a row) · one cached row.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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

        /// <summary>sums[j] = Σ_l p[j·n + l] · value l (P·V) for the group's heads: one 32-wide chunk at a time over all
        /// keys, four heads together, so the eight accumulators stay in registers.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Weighted<TRows>(float* p, byte* values, int n, float* sums) where TRows : IWeightRows
        {
            long rowBytes = (long)Dh * es;
            if (typeof(TRows) == typeof(PlainRows))
            {
                new Span<float>(sums, r * Dh).Clear();
                for (int l = 0; l < n; l++)
                    for (int d = 0; d < Dh; d++)
                    {
                        float value = Read(values + l * rowBytes, d);
                        for (int j = 0; j < r; j++) sums[j * Dh + d] += p[j * n + l] * value;
                    }
                return;
            }
            int h = 0;
            for (; h + 4 <= r; h += 4)
            {
                float* p0 = p + h * n, p1 = p0 + n, p2 = p1 + n, p3 = p2 + n;
                for (int c = 0; c < Dh; c += 32)
                {
                    Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
                    for (int l = 0; l < n; l++)
                    {
                        TRows.Load(values + l * rowBytes, c, out var a, out var b);
                        var w = Vector512.Create(p0[l]);
                        a0 = Vector512.FusedMultiplyAdd(a, w, a0); b0 = Vector512.FusedMultiplyAdd(b, w, b0);
                        w = Vector512.Create(p1[l]);
                        a1 = Vector512.FusedMultiplyAdd(a, w, a1); b1 = Vector512.FusedMultiplyAdd(b, w, b1);
                        w = Vector512.Create(p2[l]);
                        a2 = Vector512.FusedMultiplyAdd(a, w, a2); b2 = Vector512.FusedMultiplyAdd(b, w, b2);
                        w = Vector512.Create(p3[l]);
                        a3 = Vector512.FusedMultiplyAdd(a, w, a3); b3 = Vector512.FusedMultiplyAdd(b, w, b3);
                    }
                    float* at = sums + h * Dh + c;
                    a0.Store(at); b0.Store(at + 16);
                    a1.Store(at + Dh); b1.Store(at + Dh + 16);
                    a2.Store(at + 2 * Dh); b2.Store(at + 2 * Dh + 16);
                    a3.Store(at + 3 * Dh); b3.Store(at + 3 * Dh + 16);
                }
            }
            for (; h < r; h++)
                for (int c = 0; c < Dh; c += 32)
                {
                    Vector512<float> a0 = default, b0 = default;
                    for (int l = 0; l < n; l++)
                    {
                        TRows.Load(values + l * rowBytes, c, out var a, out var b);
                        var w = Vector512.Create(p[h * n + l]);
                        a0 = Vector512.FusedMultiplyAdd(a, w, a0); b0 = Vector512.FusedMultiplyAdd(b, w, b0);
                    }
                    a0.Store(sums + h * Dh + c); b0.Store(sums + h * Dh + c + 16);
                }
        }

        /// <summary>Softmax in float32 over one head's n dot products, in place, scaled first; bfloat16 rounds where the
        /// TorchSharp path does: the matmul's result, its product with the scale, the probabilities (cast back before
        /// P·V). The scalar tail repeats the vector body's operations.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Softmax(float* x, int n)
        {
            int v = path == KernelPath.Vector512 ? n & ~15 : 0;
            var vscale = Vector512.Create(scale);
            var vmax = Vector512.Create(float.NegativeInfinity);
            for (int i = 0; i < v; i += 16)
            {
                var s = Vector512.Load(x + i);
                s = bf16 ? BFloat16(BFloat16(s) * vscale) : s * vscale;
                s.Store(x + i);
                vmax = Vector512.Max(vmax, s);
            }
            float max = Largest(vmax);
            for (int i = v; i < n; i++)
            {
                x[i] = bf16 ? BFloat16(BFloat16(x[i]) * scale) : x[i] * scale;
                max = Math.Max(max, x[i]);
            }
            vmax = Vector512.Create(max);
            var vsum = Vector512<float>.Zero;
            for (int i = 0; i < v; i += 16)
            {
                var e = Vector512.Exp(Vector512.Load(x + i) - vmax);
                e.Store(x + i);
                vsum += e;
            }
            float sum = Vector512.Sum(vsum);
            for (int i = v; i < n; i++) { x[i] = MathF.Exp(x[i] - max); sum += x[i]; }
            var vtotal = Vector512.Create(sum);
            for (int i = 0; i < v; i += 16)
            {
                var p = Vector512.Load(x + i) / vtotal;
                (bf16 ? BFloat16(p) : p).Store(x + i);
            }
            for (int i = v; i < n; i++) x[i] = bf16 ? BFloat16(x[i] / sum) : x[i] / sum;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        float Read(byte* p, int i) => Elements.Read(p, i, bf16);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Write(byte* p, int i, float value) => Elements.Write(p, i, value, bf16);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static float BFloat16(float v) => BFloat16Bits.Rounded(v);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static float Largest(Vector512<float> v)
        {
            var h = Vector256.Max(v.GetLower(), v.GetUpper());
            var q = Vector128.Max(h.GetLower(), h.GetUpper());
            return MathF.Max(MathF.Max(q[0], q[1]), MathF.Max(q[2], q[3]));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector512<float> BFloat16(Vector512<float> v) => BFloat16Bits.Round(v);
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
