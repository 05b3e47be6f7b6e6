// Makes TorchSharp 0.107's libLibTorchSharp.so load on a system whose libstdc++ lacks GLIBCXX_3.4.32 (Debian 12).
// Why this is safe, measured: the library requires GLIBCXX_3.4.32 for exactly one symbol,
// std::ios_base_library_init(), which GCC 13's <iostream> references only to pull in the newer libstdc++, and no
// relocation ever binds it. So the only obstacle is the version-requirement entry (Elf64_Vernaux); we point it at
// GLIBCXX_3.4.30 instead. Everything is checked against the ELF structures before a byte is written, and anything
// unexpected (a future TorchSharp) fails loudly instead of patching blindly. See ../shared/notes/torchsharp-debian12.md.
//
// This file is compiled twice: by MSBuild's RoslynCodeTaskFactory as the PatchTorchSharpGlibcxx task (see
// TorchSharpGlibcxxFix.targets), and into the model tests with NO_MSBUILD_TASK so the ELF logic has unit tests.
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;

public static class GlibcxxVersionPatch
{
    public const string Wanted = "GLIBCXX_3.4.32";
    public const string Replacement = "GLIBCXX_3.4.30";
    const uint ShtRela = 4, ShtRel = 9, ShtDynsym = 11, ShtGnuVerneed = 0x6ffffffe, ShtGnuVersym = 0x6fffffff;

    public enum Outcome { Patched, AlreadyLoadable }

    /// <summary>Where the system libstdc++ lives on common x86-64 distributions; null when none is found.</summary>
    public static string? FindSystemLibStdCxx()
    {
        string[] candidates =
        {
            "/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
        };
        return candidates.FirstOrDefault(File.Exists);
    }

    /// <summary>True when the given libstdc++ defines the version node TorchSharp asks for (then nothing may be patched).</summary>
    public static bool Provides(string libStdCxxPath, string version)
    {
        var bytes = File.ReadAllBytes(libStdCxxPath);
        return IndexOf(bytes, Encoding.ASCII.GetBytes(version + "\0")) >= 0;
    }

    /// <summary>Rewrites the GLIBCXX_3.4.32 requirement of <paramref name="path"/> in place, after checking it is the
    /// harmless one described above. Idempotent: a file that no longer requires it is left alone.</summary>
    public static Outcome Apply(string path)
    {
        var b = File.ReadAllBytes(path);
        var elf = new Elf(b, path);
        var verneed = elf.Sections.Where(s => s.Type == ShtGnuVerneed).ToList();
        if (verneed.Count != 1) throw Fail(path, $"expected one .gnu.version_r section, found {verneed.Count}");
        var vn = verneed[0];
        var strtab = elf.Sections[(int)vn.Link];

        (int auxOffset, ushort versionIndex)? target = null;
        int need = (int)vn.Offset;
        for (int i = 0; i < vn.Info; i++)
        {
            string file = elf.String(strtab, elf.U32(need + 4));
            int aux = need + (int)elf.U32(need + 8);
            for (int j = 0; j < elf.U16(need + 2); j++)
            {
                string name = elf.String(strtab, elf.U32(aux + 8));
                if (name == Wanted)
                {
                    if (file != "libstdc++.so.6") throw Fail(path, $"{Wanted} is required from '{file}', not libstdc++.so.6");
                    target = (aux, (ushort)(elf.U16(aux + 6) & 0x7fff));
                }
                uint nextAux = elf.U32(aux + 12);
                if (nextAux == 0) break;
                aux += (int)nextAux;
            }
            uint next = elf.U32(need + 12);
            if (next == 0) break;
            need += (int)next;
        }
        if (target is null) return Outcome.AlreadyLoadable;

        // Which dynamic symbols carry that version, and does any relocation bind them?
        var dynsym = elf.Sections.Single(s => s.Type == ShtDynsym);
        var versym = elf.Sections.Single(s => s.Type == ShtGnuVersym);
        var symStr = elf.Sections[(int)dynsym.Link];
        var bound = new List<(int index, string name)>();
        int count = (int)(dynsym.Size / 24);
        for (int k = 0; k < count; k++)
        {
            if ((elf.U16((int)versym.Offset + 2 * k) & 0x7fff) != target.Value.versionIndex) continue;
            bound.Add((k, elf.String(symStr, elf.U32((int)dynsym.Offset + 24 * k))));
        }
        if (bound.Count != 1 || bound[0].name != "_ZSt21ios_base_library_initv")
            throw Fail(path, $"{Wanted} versions [{string.Join(", ", bound.Select(s => s.name))}], expected only _ZSt21ios_base_library_initv");
        foreach (var rel in elf.Sections.Where(s => (s.Type == ShtRela || s.Type == ShtRel) && s.Link == elf.Sections.IndexOf(dynsym)))
        {
            int entry = rel.Type == ShtRela ? 24 : 16;
            for (long off = rel.Offset; off < rel.Offset + rel.Size; off += entry)
                if ((int)(elf.U64((int)off + 8) >> 32) == bound[0].index)
                    throw Fail(path, $"a relocation binds {bound[0].name}; rewriting its version would break the library");
        }

        // Same length, so the string table keeps its layout; the hash must match the new name for the loader.
        int nameOffset = (int)(strtab.Offset + elf.U32(target.Value.auxOffset + 8));
        Encoding.ASCII.GetBytes(Replacement).CopyTo(b, nameOffset);
        BitConverter.GetBytes(ElfHash(Replacement)).CopyTo(b, target.Value.auxOffset);
        File.WriteAllBytes(path, b);
        return Outcome.Patched;
    }

    /// <summary>The SysV ELF hash (System V ABI, "Hash Table"), as stored in vna_hash.</summary>
    public static uint ElfHash(string name)
    {
        uint h = 0;
        foreach (byte c in Encoding.ASCII.GetBytes(name))
        {
            h = (h << 4) + c;
            uint g = h & 0xf0000000;
            if (g != 0) h ^= g >> 24;
            h &= ~g;
        }
        return h;
    }

    static InvalidDataException Fail(string path, string why) =>
        new($"{path}: does not look like the TorchSharp 0.107 library this build fix was measured on ({why}). " +
            "Update build/GlibcxxVersionPatch.cs for this TorchSharp version, or build on a system whose libstdc++ has " + Wanted + ".");

    static int IndexOf(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i <= haystack.Length - needle.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && haystack[i + j] == needle[j]) j++;
            if (j == needle.Length) return i;
        }
        return -1;
    }

    sealed class Section { public uint Type; public long Offset; public long Size; public uint Link; public uint Info; }

    sealed class Elf
    {
        readonly byte[] b;
        public readonly List<Section> Sections = new();

        public Elf(byte[] bytes, string path)
        {
            b = bytes;
            if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F')
                throw Fail(path, "not an ELF file");
            if (b[4] != 2 || b[5] != 1) throw Fail(path, "not a little-endian 64-bit ELF file");
            long shoff = (long)U64(0x28);
            int shentsize = U16(0x3A), shnum = U16(0x3C);
            if (shentsize != 64 || shoff <= 0 || shoff + (long)shnum * 64 > b.Length) throw Fail(path, "bad section header table");
            for (int i = 0; i < shnum; i++)
            {
                int h = (int)(shoff + 64 * i);
                Sections.Add(new Section
                {
                    Type = U32(h + 4), Offset = (long)U64(h + 0x18), Size = (long)U64(h + 0x20),
                    Link = U32(h + 0x28), Info = U32(h + 0x2C),
                });
            }
        }

        public ushort U16(int o) => BitConverter.ToUInt16(b, o);
        public uint U32(int o) => BitConverter.ToUInt32(b, o);
        public ulong U64(int o) => BitConverter.ToUInt64(b, o);

        public string String(Section table, uint offset)
        {
            int start = (int)(table.Offset + offset), end = start;
            while (b[end] != 0) end++;
            return Encoding.ASCII.GetString(b, start, end - start);
        }
    }
}

#if !NO_MSBUILD_TASK
/// <summary>MSBuild task: patches every libLibTorchSharp.so under a folder when the system libstdc++ needs it.</summary>
public sealed class PatchTorchSharpGlibcxx : Microsoft.Build.Utilities.Task
{
    [Microsoft.Build.Framework.Required] public string Directory { get; set; } = "";

    public override bool Execute()
    {
        if (!System.IO.Directory.Exists(Directory)) return true;
        var libs = System.IO.Directory.GetFiles(Directory, "libLibTorchSharp.so", SearchOption.AllDirectories);
        if (libs.Length == 0) return true;
        var system = GlibcxxVersionPatch.FindSystemLibStdCxx();
        if (system is null)
        {
            Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal, "No system libstdc++ found; TorchSharp left as shipped.");
            return true;
        }
        if (GlibcxxVersionPatch.Provides(system, GlibcxxVersionPatch.Wanted)) return true;
        try
        {
            foreach (var lib in libs)
                if (GlibcxxVersionPatch.Apply(lib) == GlibcxxVersionPatch.Outcome.Patched)
                    Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High,
                        $"Patched {lib}: requires {GlibcxxVersionPatch.Replacement} instead of {GlibcxxVersionPatch.Wanted} ({system} lacks it).");
            return true;
        }
        catch (InvalidDataException e)
        {
            Log.LogError(e.Message);
            return false;
        }
    }
}
#endif
