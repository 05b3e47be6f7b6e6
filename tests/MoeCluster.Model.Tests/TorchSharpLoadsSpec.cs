using TorchSharp;

namespace MoeCluster.Model.Tests;

public class TorchSharpLoadsSpec
{
    [Fact]
    public void Native_library_loads_and_runs_a_matmul()
    {
        using var a = torch.ones(4, 8);
        using var b = torch.full(8, 3, 2.0f);
        using var c = a.matmul(b);
        Assert.Equal(16f, c[1, 2].item<float>());
    }

    [Fact]
    public void Output_copy_needs_no_glibcxx_newer_than_the_system_provides()
    {
        var lib = Directory.GetFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).Single();
        var system = GlibcxxVersionPatch.FindSystemLibStdCxx();
        Assert.NotNull(system);
        if (!GlibcxxVersionPatch.Provides(system!, GlibcxxVersionPatch.Wanted))
        {
            // The build must already have rewritten the requirement; applying again finds nothing to do.
            var copy = Path.Combine(Path.GetTempPath(), $"lts-{Guid.NewGuid():N}.so");
            File.Copy(lib, copy);
            try { Assert.Equal(GlibcxxVersionPatch.Outcome.AlreadyLoadable, GlibcxxVersionPatch.Apply(copy)); }
            finally { File.Delete(copy); }
        }
    }

    [Fact]
    public void Patch_rewrites_only_the_version_requirement_of_the_shipped_library()
    {
        var pkg = Path.Combine(Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                               ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages"),
                               "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(pkg), $"shipped TorchSharp library not found at {pkg}");
        var copy = Path.Combine(Path.GetTempPath(), $"lts-{Guid.NewGuid():N}.so");
        File.Copy(pkg, copy);
        try
        {
            var before = File.ReadAllBytes(copy);
            Assert.Equal(GlibcxxVersionPatch.Outcome.Patched, GlibcxxVersionPatch.Apply(copy));
            var after = File.ReadAllBytes(copy);
            Assert.Equal(before.Length, after.Length);
            // Exactly the 4 hash bytes and the 2 differing name bytes ("32" -> "30": one byte) change.
            int changed = before.Zip(after).Count(p => p.First != p.Second);
            Assert.InRange(changed, 2, 5);
            Assert.Equal(GlibcxxVersionPatch.Outcome.AlreadyLoadable, GlibcxxVersionPatch.Apply(copy));
        }
        finally { File.Delete(copy); }
    }

    [Fact]
    public void Elf_hash_matches_the_sysv_reference_values()
    {
        // Hashes printed by `objdump -p libLibTorchSharp.so` for its libstdc++ requirements.
        Assert.Equal(0x0297f840u, GlibcxxVersionPatch.ElfHash("GLIBCXX_3.4.30"));
        Assert.Equal(0x0297f879u, GlibcxxVersionPatch.ElfHash("GLIBCXX_3.4.29"));
        Assert.Equal(0x0afd17f3u, GlibcxxVersionPatch.ElfHash("CXXABI_1.3.13"));
    }
}
