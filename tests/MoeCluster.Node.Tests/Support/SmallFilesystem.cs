using System.Diagnostics;

namespace MoeCluster.Node.Tests.Support;

/// <summary>A tmpfs of a fixed size mounted on a fresh directory (needs root, as the test machines run), so a test can
/// fill the disk under a job store for real and free it again. A machine where mounting is refused fails the test,
/// saying why: the disk-full path must never turn green by being skipped.</summary>
public sealed class SmallFilesystem : IDisposable
{
    public string Path { get; }
    string Filler => System.IO.Path.Combine(Path, "filler.bin");

    public SmallFilesystem(long bytes)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "moecluster-small-fs-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Path);
        var (code, output) = Run("mount", "-t", "tmpfs", "-o", $"size={bytes}", "tmpfs", Path);
        if (code != 0)
        {
            Directory.Delete(Path);
            throw new InvalidOperationException($"cannot mount a {bytes}-byte tmpfs on {Path} (mount exited {code}: {output.Trim()}); the disk-full tests need root (the CI and test machines run as root)");
        }
    }

    public long FreeBytes => new DriveInfo(Path).AvailableFreeSpace;

    /// <summary>Writes a filler file until only <paramref name="leave"/> bytes are free. With 0 the disk stays full
    /// until <see cref="Free"/>: a holder takes back at once whatever room a writer frees, as other writers do on a
    /// real full disk. Without it the test raced SQLite: every commit deletes its rollback journal, and the pages
    /// freed let the next commit through, so under load a job could finish on a "full" disk without a failed write.</summary>
    public void Fill(long leave = 0)
    {
        if (leave > 0)
        {
            using var filler = new FileStream(Filler, FileMode.Append, FileAccess.Write, FileShare.None, 1, FileOptions.None);
            var block = new byte[64 * 1024];
            long room;
            while ((room = FreeBytes - leave) > 0)
            {
                filler.Write(block, 0, (int)Math.Min(block.Length, room));
                filler.Flush();
            }
            return;
        }
        if (holder is not null) return;
        var stop = new ManualResetEventSlim();
        var full = new ManualResetEventSlim();
        var thread = new Thread(() => Hold(stop, full)) { IsBackground = true, Name = "small-fs-holder" };
        thread.Start();
        full.Wait();
        holder = (thread, stop);
    }

    (Thread Thread, ManualResetEventSlim Stop)? holder;

    void Hold(ManualResetEventSlim stop, ManualResetEventSlim full)
    {
        using var filler = new FileStream(Filler, FileMode.Append, FileAccess.Write, FileShare.Delete, 1, FileOptions.None);
        var block = new byte[64 * 1024];
        var page = new byte[4096];
        while (true)
        {   // big blocks until the first refusal, then a page at a time: a page is the least tmpfs hands out
            try { filler.Write(block); }
            catch (IOException) { break; }
        }
        full.Set();
        while (!stop.Wait(1))
        {
            try { while (true) filler.Write(page); }
            catch (IOException) { /* full again */ }
        }
    }

    /// <summary>Deletes the filler (stopping the holder first): the store has room again.</summary>
    public void Free()
    {
        if (holder is { } h)
        {
            h.Stop.Set();
            h.Thread.Join();
            holder = null;
        }
        File.Delete(Filler);
    }

    static (int Code, string Output) Run(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output);
    }

    public void Dispose()
    {
        if (holder is not null) Free();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        // Lazy: a connection the host has not closed yet must not keep the mount (and its memory) alive.
        Run("umount", "-l", Path);
        try { Directory.Delete(Path); } catch (IOException) { /* still busy: the lazy unmount finishes it */ }
    }
}
