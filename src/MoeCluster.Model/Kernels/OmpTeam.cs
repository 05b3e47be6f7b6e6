using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace MoeCluster.Model.Kernels;

/// <summary>Work split over the threads of one parallel region: <see cref="Run"/> is called once per thread with
/// that thread's number and the team's size.</summary>
public interface IParallelWork
{
    void Run(int thread, int threads);
}

/// <summary>
/// Runs managed kernels on libtorch's own OpenMP team. libtorch parallelises its ops with libgomp, whose workers spin
/// for a while after each region; a kernel on a second pool (.NET threads) then fights those spinning workers for the
/// cores (measured in docs/BENCHMARKS.md: a 2-thread .NET kernel made a decode step 20× slower on 2 cores). Entering a
/// region through <c>GOMP_parallel</c> of the very libgomp libtorch loaded puts the kernel on the same workers — the
/// thread that calls is thread 0, as for libtorch's own ops — so the step's ops and kernels take turns on one team,
/// as llama.cpp runs its whole graph on one pool. The workers call back into managed code through an
/// <see cref="UnmanagedCallersOnlyAttribute"/> entry (the runtime attaches each native worker once).
/// Where no libgomp is loaded (a libtorch built another way) <see cref="Available"/> is false and callers run on one
/// thread.
/// </summary>
public static unsafe class OmpTeam
{
    static readonly delegate* unmanaged<delegate* unmanaged<void*, void>, void*, uint, uint, void> parallel;
    static readonly delegate* unmanaged<int> threadNum, numThreads;

    /// <summary>Whether libtorch's libgomp was found in this process.</summary>
    public static bool Available { get; }

    /// <summary>Where it was found (for the benchmark's report), or why not.</summary>
    public static string Origin { get; } = "not looked up";

    static OmpTeam()
    {
        _ = get_num_threads();   // loads libtorch, and with it libgomp
        try
        {
            var path = File.ReadLines("/proc/self/maps")
                .Select(l => l.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries))
                .Where(p => p.Length == 6 && Path.GetFileName(p[5].Trim()).StartsWith("libgomp", StringComparison.Ordinal))
                .Select(p => p[5].Trim()).FirstOrDefault();
            if (path is null) { Origin = "no libgomp in this process"; return; }
            var lib = NativeLibrary.Load(path);
            parallel = (delegate* unmanaged<delegate* unmanaged<void*, void>, void*, uint, uint, void>)NativeLibrary.GetExport(lib, "GOMP_parallel");
            threadNum = (delegate* unmanaged<int>)NativeLibrary.GetExport(lib, "omp_get_thread_num");
            numThreads = (delegate* unmanaged<int>)NativeLibrary.GetExport(lib, "omp_get_num_threads");
            Available = true;
            Origin = path;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or EntryPointNotFoundException or DllNotFoundException)
        {
            Origin = $"libgomp not usable: {e.Message}";
        }
    }

    /// <summary>Runs <paramref name="work"/> on <paramref name="threads"/> threads of the calling thread's team (on
    /// the calling thread alone where the team is not available or one thread is asked for). An exception on any
    /// thread is rethrown here once the region has ended.</summary>
    public static void Run(IParallelWork work, int threads)
    {
        if (!Available || threads <= 1) { work.Run(0, 1); return; }
        var region = new Region(work);
        var handle = GCHandle.Alloc(region);
        try { parallel(&Enter, (void*)GCHandle.ToIntPtr(handle), (uint)threads, 0); }
        finally { handle.Free(); }
        region.Failure?.Throw();
    }

    sealed class Region(IParallelWork work)
    {
        public readonly IParallelWork Work = work;
        public ExceptionDispatchInfo? Failure;
    }

    [UnmanagedCallersOnly]
    static void Enter(void* data)
    {
        var region = (Region)GCHandle.FromIntPtr((nint)data).Target!;
        try { region.Work.Run(threadNum(), numThreads()); }
        catch (Exception e) { Interlocked.CompareExchange(ref region.Failure, ExceptionDispatchInfo.Capture(e), null); }   // an exception must not cross into native code
    }
}
