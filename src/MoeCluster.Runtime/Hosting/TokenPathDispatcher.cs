using Akka.Actor;

namespace MoeCluster.Runtime.Hosting;

/// <summary>
/// The dispatcher the actors of a decode step run on: gateway, its routers, attention and expert entities, the expert
/// host and its replicas. A step is a chain of about 16 mailbox hand-offs per layer; on the default dispatcher each
/// one wakes a .NET thread-pool thread, so a step wandered over 11–14 threads, each calling into libtorch and so each
/// with an OpenMP team of its own (libgomp keeps one per calling thread, and its workers spin after every region).
/// On a few dedicated threads a hand-off is a queue operation on a thread that is already running, and libtorch's ops
/// and the managed kernels (<c>OmpTeam</c>) find the same hot team every time.
/// </summary>
public static class TokenPathDispatcher
{
    /// <summary>Config path of the dispatcher (<c>Props.WithDispatcher</c> takes it).</summary>
    public const string Id = "moecluster.token-path-dispatcher";

    /// <summary>Threads unless <see cref="RuntimeOptions.TokenPathThreads"/> says otherwise: none, i.e. the .NET thread
    /// pool. With one dedicated thread the served benchmark's one-node cluster was within the noise of the thread pool
    /// (0.99 / 0.97 of the model core against 0.94 / 0.93, load 4 on 2 cores), and ClusterPartitionSpec's cut-off
    /// expert node, restarted, did not get its experts back within 150 s twice running (it passes on the thread pool):
    /// one thread serialises weight loading and hand-offs behind the steps it runs. Opt in with --token-threads N.</summary>
    public const int DefaultThreads = 0;

    /// <summary>The dispatcher's HOCON: Akka's <c>ForkJoinDispatcher</c> (a dedicated thread pool of a fixed size,
    /// threads named after the dispatcher id), or with 0 threads a plain dispatcher on the .NET thread pool, as
    /// Akka's default one.</summary>
    public static string Hocon(RuntimeOptions runtime)
    {
        if (runtime.TokenPathThreads < 0) throw new ArgumentException($"--token-threads: {runtime.TokenPathThreads} is negative; give 1 or more (0: the .NET thread pool)");
        return runtime.TokenPathThreads == 0
            ? $$"""
              {{Id}} {
                type = Dispatcher
                executor = default-executor
                throughput = 30
              }
              """
            : $$"""
              {{Id}} {
                type = ForkJoinDispatcher
                executor = fork-join-executor
                # An actor keeps the thread for up to this many messages before the next actor's turn: the token path's
                # actors each get a few messages per step, so the default (30) never holds one actor back for long.
                throughput = 30
                dedicated-thread-pool {
                  thread-count = {{runtime.TokenPathThreads}}
                  # Background threads: they must not keep a stopping process alive.
                  threadtype = background
                }
              }
              """;
    }

    /// <summary><paramref name="props"/> on the token-path dispatcher.</summary>
    public static Props On(Props props) => props.WithDispatcher(Id);
}
