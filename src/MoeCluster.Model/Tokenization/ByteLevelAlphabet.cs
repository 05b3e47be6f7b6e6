using System.Text;

namespace MoeCluster.Model.Tokenization;

/// <summary>
/// GPT-2's <c>bytes_to_unicode</c>: every byte gets a printable character, so byte-level BPE vocabularies are
/// ordinary strings (space is 'Ġ', newline is 'Ċ'). Printable Latin-1 bytes map to themselves; the other 68 bytes
/// map to U+0100 onwards in byte order.
/// </summary>
public static class ByteLevelAlphabet
{
    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, b)).ToDictionary(x => x.c, x => (byte)x.b);

    /// <summary>The character that stands for <paramref name="value"/>.</summary>
    public static char CharFor(byte value) => ByteToChar[value];

    /// <summary>The byte a vocabulary character stands for; false for characters outside the alphabet.</summary>
    public static bool TryGetByte(char c, out byte value) => CharToByte.TryGetValue(c, out value);

    /// <summary>Text as its UTF-8 bytes spelled in the alphabet (the form vocabulary entries take).</summary>
    public static string Encode(string text) => Encode(Encoding.UTF8.GetBytes(text));

    /// <summary>Bytes spelled in the alphabet.</summary>
    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++)
        {
            chars[i] = ByteToChar[bytes[i]];
        }
        return new string(chars);
    }

    /// <summary>
    /// The bytes a vocabulary entry stands for. A token holding a character outside the alphabet is taken as its
    /// raw UTF-8, as HF's ByteLevel decoder does.
    /// </summary>
    public static byte[] Decode(string token)
    {
        var bytes = new byte[token.Length];
        for (int i = 0; i < token.Length; i++)
        {
            if (!CharToByte.TryGetValue(token[i], out bytes[i]))
            {
                return Encoding.UTF8.GetBytes(token);
            }
        }
        return bytes;
    }

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        var assigned = new bool[256];
        foreach (var (first, last) in new[] { ('!', '~'), ('¡', '¬'), ('®', 'ÿ') })
        {
            for (int b = first; b <= last; b++)
            {
                map[b] = (char)b;
                assigned[b] = true;
            }
        }
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            if (!assigned[b])
            {
                map[b] = (char)next++;
            }
        }
        return map;
    }
}
