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

    /// <summary>Writes a filler file until only <paramref name="leave"/> bytes are free (0: until the disk refuses).</summary>
    public void Fill(long leave = 0)
    {
        using var filler = new FileStream(Filler, FileMode.Append, FileAccess.Write, FileShare.None, 1, FileOptions.None);
        var block = new byte[64 * 1024];
        try
        {
            long room;
            while ((room = FreeBytes - leave) > 0)
            {
                filler.Write(block, 0, (int)Math.Min(block.Length, room));
                filler.Flush();
            }
        }
        catch (IOException) when (leave == 0) { /* full: exactly what was asked */ }
    }

    /// <summary>Deletes the filler: the store has room again.</summary>
    public void Free() => File.Delete(Filler);

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
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        // Lazy: a connection the host has not closed yet must not keep the mount (and its memory) alive.
        Run("umount", "-l", Path);
        try { Directory.Delete(Path); } catch (IOException) { /* still busy: the lazy unmount finishes it */ }
    }
}
