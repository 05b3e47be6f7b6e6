using System.Text;

namespace MoeCluster.Model.Tokenization;

/// <summary>SentencePiece piece types (sentencepiece_model.proto, ModelProto.SentencePiece.Type).</summary>
public enum SentencePieceType
{
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// <summary>One vocabulary entry of a <c>tokenizer.model</c>.</summary>
public readonly record struct SentencePiece(string Piece, float Score, SentencePieceType Type);

/// <summary>
/// The parts of a SentencePiece <c>tokenizer.model</c> (protobuf <c>ModelProto</c>) that decide how text turns into
/// ids and back (<see cref="SentencePieceBpeEncoder"/> runs them) and whether we can run the model at all.
/// Field numbers and proto2 defaults follow google/sentencepiece src/sentencepiece_model.proto.
/// </summary>
public sealed class SentencePieceModelFile
{
    /// <summary>TrainerSpec.ModelType values.</summary>
    public static readonly IReadOnlyDictionary<int, string> ModelTypeNames =
        new Dictionary<int, string> { [1] = "UNIGRAM", [2] = "BPE", [3] = "WORD", [4] = "CHAR" };

    public const int BpeModelType = 2;

    public required IReadOnlyList<SentencePiece> Pieces { get; init; }
    public int ModelType { get; init; } = 1;
    public bool ByteFallback { get; init; }
    public int UnkId { get; init; }
    public int BosId { get; init; } = 1;
    public int EosId { get; init; } = 2;
    public int PadId { get; init; } = -1;
    public bool AddDummyPrefix { get; init; } = true;
    public bool RemoveExtraWhitespaces { get; init; } = true;
    public bool EscapeWhitespaces { get; init; } = true;
    /// <summary>normalizer_spec.name: "identity" for Llama, Mistral and Gemma; "nmt_nfkc" is the trainer's default.</summary>
    public string NormalizerName { get; init; } = "";
    /// <summary>Bytes of normalizer_spec.precompiled_charsmap: the compiled rule set of a non-identity normaliser.</summary>
    public int PrecompiledCharsmapLength { get; init; }
    public bool TreatWhitespaceAsSuffix { get; init; }

    public string ModelTypeName => ModelTypeNames.TryGetValue(ModelType, out var name) ? name : $"unknown ({ModelType})";

    public static SentencePieceModelFile Read(string path)
    {
        byte[] data = File.ReadAllBytes(path);
        try
        {
            return Parse(data);
        }
        catch (Exception ex) when (ex is InvalidDataException or IndexOutOfRangeException or ArgumentOutOfRangeException or DecoderFallbackException)
        {
            throw new InvalidDataException($"{path} is not a valid SentencePiece model (protobuf ModelProto): {ex.Message}", ex);
        }
    }

    public static SentencePieceModelFile Parse(ReadOnlySpan<byte> data)
    {
        var pieces = new List<SentencePiece>();
        int modelType = 1, unkId = 0, bosId = 1, eosId = 2, padId = -1;
        bool byteFallback = false, addDummyPrefix = true, removeExtraWhitespaces = true, escapeWhitespaces = true, suffix = false;
        string normalizerName = "";
        int charsmap = 0;
        bool sawTrainerSpec = false;

        var reader = new ProtoReader(data);
        while (reader.Next(out int field, out int wire))
        {
            switch (field)
            {
                case 1 when wire == ProtoReader.LengthDelimited:
                    pieces.Add(ReadPiece(reader.Bytes()));
                    break;
                case 2 when wire == ProtoReader.LengthDelimited:
                    sawTrainerSpec = true;
                    var trainer = new ProtoReader(reader.Bytes());
                    while (trainer.Next(out int f, out int w))
                    {
                        switch (f)
                        {
                            case 3 when w == ProtoReader.Varint: modelType = (int)trainer.UInt64(); break;
                            case 24 when w == ProtoReader.Varint: suffix = trainer.UInt64() != 0; break;
                            case 35 when w == ProtoReader.Varint: byteFallback = trainer.UInt64() != 0; break;
                            case 40 when w == ProtoReader.Varint: unkId = (int)trainer.UInt64(); break;
                            case 41 when w == ProtoReader.Varint: bosId = (int)trainer.UInt64(); break;
                            case 42 when w == ProtoReader.Varint: eosId = (int)trainer.UInt64(); break;
                            case 43 when w == ProtoReader.Varint: padId = (int)trainer.UInt64(); break;
                            default: trainer.Skip(w); break;
                        }
                    }
                    break;
                case 3 when wire == ProtoReader.LengthDelimited:
                    var normalizer = new ProtoReader(reader.Bytes());
                    while (normalizer.Next(out int f, out int w))
                    {
                        switch (f)
                        {
                            case 1 when w == ProtoReader.LengthDelimited: normalizerName = Utf8Strict.GetString(normalizer.Bytes()); break;
                            case 2 when w == ProtoReader.LengthDelimited: charsmap = normalizer.Bytes().Length; break;
                            case 3 when w == ProtoReader.Varint: addDummyPrefix = normalizer.UInt64() != 0; break;
                            case 4 when w == ProtoReader.Varint: removeExtraWhitespaces = normalizer.UInt64() != 0; break;
                            case 5 when w == ProtoReader.Varint: escapeWhitespaces = normalizer.UInt64() != 0; break;
                            default: normalizer.Skip(w); break;
                        }
                    }
                    break;
                default:
                    reader.Skip(wire);
                    break;
            }
        }
        if (pieces.Count == 0)
        {
            throw new InvalidDataException("no pieces (field 1) found");
        }
        if (!sawTrainerSpec)
        {
            // The trainer always writes it (after the pieces), so its absence means a cut-off file.
            throw new InvalidDataException("no trainer_spec (field 2) found; the file looks truncated");
        }
        return new SentencePieceModelFile
        {
            Pieces = pieces,
            ModelType = modelType,
            ByteFallback = byteFallback,
            UnkId = unkId,
            BosId = bosId,
            EosId = eosId,
            PadId = padId,
            AddDummyPrefix = addDummyPrefix,
            RemoveExtraWhitespaces = removeExtraWhitespaces,
            EscapeWhitespaces = escapeWhitespaces,
            NormalizerName = normalizerName,
            PrecompiledCharsmapLength = charsmap,
            TreatWhitespaceAsSuffix = suffix,
        };
    }

    private static SentencePiece ReadPiece(ReadOnlySpan<byte> data)
    {
        string piece = "";
        float score = 0;
        var type = SentencePieceType.Normal;
        var reader = new ProtoReader(data);
        while (reader.Next(out int field, out int wire))
        {
            switch (field)
            {
                case 1 when wire == ProtoReader.LengthDelimited: piece = Utf8Strict.GetString(reader.Bytes()); break;
                case 2 when wire == ProtoReader.Fixed32: score = reader.Float(); break;
                case 3 when wire == ProtoReader.Varint: type = (SentencePieceType)reader.UInt64(); break;
                default: reader.Skip(wire); break;
            }
        }
        return new SentencePiece(piece, score, type);
    }

    private static readonly UTF8Encoding Utf8Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Just enough protobuf wire format to walk nested messages.</summary>
    private ref struct ProtoReader(ReadOnlySpan<byte> data)
    {
        public const int Varint = 0, Fixed64 = 1, LengthDelimited = 2, Fixed32 = 5;

        private readonly ReadOnlySpan<byte> _data = data;
        private int _pos;

        public bool Next(out int field, out int wire)
        {
            if (_pos >= _data.Length)
            {
                field = wire = 0;
                return false;
            }
            ulong key = ReadVarint();
            field = (int)(key >> 3);
            wire = (int)(key & 7);
            if (field == 0)
            {
                throw new InvalidDataException($"field number 0 at byte {_pos}");
            }
            return true;
        }

        public ulong UInt64() => ReadVarint();

        public float Float()
        {
            float value = BitConverter.ToSingle(Take(4));
            return value;
        }

        public ReadOnlySpan<byte> Bytes()
        {
            ulong length = ReadVarint();
            if (length > (ulong)(_data.Length - _pos))
            {
                throw new InvalidDataException($"length {length} at byte {_pos} runs past the end ({_data.Length} bytes)");
            }
            return Take((int)length);
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case Varint: ReadVarint(); break;
                case Fixed64: Take(8); break;
                case LengthDelimited: Bytes(); break;
                case Fixed32: Take(4); break;
                default: throw new InvalidDataException($"unsupported wire type {wire} at byte {_pos}");
            }
        }

        private ReadOnlySpan<byte> Take(int count)
        {
            if (count > _data.Length - _pos)
            {
                throw new InvalidDataException($"{count} bytes wanted at byte {_pos}, only {_data.Length - _pos} left");
            }
            var slice = _data.Slice(_pos, count);
            _pos += count;
            return slice;
        }

        private ulong ReadVarint()
        {
            ulong result = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_pos >= _data.Length)
                {
                    throw new InvalidDataException("varint runs past the end");
                }
                byte b = _data[_pos++];
                result |= (ulong)(b & 0x7F) << shift;
                if ((b & 0x80) == 0)
                {
                    return result;
                }
            }
            throw new InvalidDataException($"varint longer than 10 bytes at byte {_pos}");
        }
    }
}
