using System.Text;
using MoeCluster.Model.Tokenization;

namespace MoeCluster.Model.Tests.Tokenization;

/// <summary>
/// Hand-encodes a SentencePiece ModelProto (google/sentencepiece src/sentencepiece_model.proto): pieces = field 1
/// {piece=1, score=2, type=3}, trainer_spec = field 2 {model_type=3, byte_fallback=35, unk/bos/eos/pad_id=40..43},
/// normalizer_spec = field 3 {add_dummy_prefix=3, remove_extra_whitespaces=4, escape_whitespaces=5}.
/// </summary>
internal static class SentencePieceModelWriter
{
    public static byte[] Encode(IEnumerable<SentencePiece> pieces, int modelType = 2, bool byteFallback = true,
        bool addDummyPrefix = true, bool removeExtraWhitespaces = false)
    {
        var model = new MemoryStream();
        foreach (var piece in pieces)
        {
            var p = new MemoryStream();
            WriteBytes(p, 1, Encoding.UTF8.GetBytes(piece.Piece));
            WriteKey(p, 2, 5);
            p.Write(BitConverter.GetBytes(piece.Score));
            WriteVarintField(p, 3, (ulong)piece.Type);
            WriteBytes(model, 1, p.ToArray());
        }

        var trainer = new MemoryStream();
        WriteVarintField(trainer, 3, (ulong)modelType);
        WriteVarintField(trainer, 35, byteFallback ? 1UL : 0UL);
        WriteVarintField(trainer, 40, 0);
        WriteVarintField(trainer, 41, 1);
        WriteVarintField(trainer, 42, 2);
        WriteVarintField(trainer, 43, unchecked((ulong)-1L)); // pad_id = -1: negative int32 is a 10-byte varint
        WriteBytes(model, 2, trainer.ToArray());

        var normalizer = new MemoryStream();
        WriteBytes(normalizer, 1, "identity"u8.ToArray());
        WriteVarintField(normalizer, 3, addDummyPrefix ? 1UL : 0UL);
        WriteVarintField(normalizer, 4, removeExtraWhitespaces ? 1UL : 0UL);
        WriteVarintField(normalizer, 5, 1);
        WriteBytes(model, 3, normalizer.ToArray());
        return model.ToArray();
    }

    /// <summary>&lt;unk&gt;=0, &lt;s&gt;=1, &lt;/s&gt;=2, then &lt;0x00&gt;..&lt;0xFF&gt; at ids 3..258, as Llama lays them out.</summary>
    public static List<SentencePiece> LlamaStylePrefix()
    {
        var pieces = new List<SentencePiece>
        {
            new("<unk>", 0, SentencePieceType.Unknown),
            new("<s>", 0, SentencePieceType.Control),
            new("</s>", 0, SentencePieceType.Control),
        };
        for (int b = 0; b < 256; b++)
        {
            pieces.Add(new($"<0x{b:X2}>", 0, SentencePieceType.Byte));
        }
        return pieces;
    }

    private static void WriteKey(Stream s, int field, int wire) => WriteVarint(s, (ulong)((field << 3) | wire));

    private static void WriteVarintField(Stream s, int field, ulong value)
    {
        WriteKey(s, field, 0);
        WriteVarint(s, value);
    }

    private static void WriteBytes(Stream s, int field, byte[] bytes)
    {
        WriteKey(s, field, 2);
        WriteVarint(s, (ulong)bytes.Length);
        s.Write(bytes);
    }

    private static void WriteVarint(Stream s, ulong value)
    {
        while (value >= 0x80)
        {
            s.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        s.WriteByte((byte)value);
    }
}
