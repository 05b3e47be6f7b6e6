namespace MoeCluster.Node;

/// <summary>A one-line progress report on stderr for long operations (loading a checkpoint, warming up a cluster).</summary>
public static class ConsoleProgress
{
    public static Action<int, int> For(string what)
    {
        int lastPercent = -1;
        return (done, total) =>
        {
            int percent = total == 0 ? 100 : 100 * done / total;
            if (percent == lastPercent) return;
            lastPercent = percent;
            if (Console.IsErrorRedirected) { if (done == total) Console.Error.WriteLine($"{what}: {total}/{total} tensors"); return; }
            Console.Error.Write($"\r{what}: {done}/{total} tensors ({percent}%)");
            if (done == total) Console.Error.WriteLine();
        };
    }
}
