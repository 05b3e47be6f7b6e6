using System.Collections.Concurrent;

namespace MoeCluster.Bench.Cluster;

/// <summary>One long-lived thread that runs the work given to it, one item at a time: torch work that must stay on the
/// same thread (its OpenMP team, its dispose scopes) however the awaiting caller is resumed.</summary>
public sealed class DedicatedThread : IDisposable
{
    readonly BlockingCollection<Action> work = new();
    readonly Thread thread;

    public DedicatedThread(string name)
    {
        thread = new Thread(() => { foreach (var a in work.GetConsumingEnumerable()) a(); }) { IsBackground = true, Name = name };
        thread.Start();
    }

    public Task<T> Run<T>(Func<T> body)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        work.Add(() =>
        {
            try { done.SetResult(body()); }
            catch (Exception e) { done.SetException(e); }
        });
        return done.Task;
    }

    public void Dispose()
    {
        work.CompleteAdding();
        thread.Join();
        work.Dispose();
    }
}
