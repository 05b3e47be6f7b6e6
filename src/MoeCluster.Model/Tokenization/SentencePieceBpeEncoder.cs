using System.Text;

namespace MoeCluster.Model.Tokenization;

/// <summary>
/// SentencePiece BPE as the SentencePiece library runs it (src/normalizer.cc, src/bpe_model.cc and
/// sentencepiece_processor.cc), for a <c>tokenizer.model</c> with the identity normaliser (Llama, Mistral, Gemma):
/// spaces become '▁' with the dummy prefix (extra whitespace removed when the model asks), the text is split into
/// characters (user-defined pieces whole), and the adjacent pair whose merged piece has the highest score is merged,
/// the leftmost among equal scores, until none is left; unused pieces are split back, and a character without a piece
/// becomes its UTF-8 bytes (byte fallback) or one unknown id for each run of unknown characters.
/// </summary>
internal sealed class SentencePieceBpeEncoder : ITextEncoder
{
    private const char Space = '\u2581';

    private readonly SentencePieceModelFile _model;
    private readonly Dictionary<string, int> _pieces = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly Dictionary<string, int> _reserved = new(StringComparer.Ordinal);
    private readonly string[] _userDefined;
    private readonly int[] _byteIds = new int[256];

    public SentencePieceBpeEncoder(SentencePieceModelFile model, string path)
    {
        if (model.PrecompiledCharsmapLength > 0 && model.NormalizerName != "identity")
        {
            throw new NotSupportedException(
                $"{path}: the SentencePiece normaliser \"{model.NormalizerName}\" (a precompiled character map) is not supported; supported: identity (as Llama, Mistral and Gemma ship).");
        }
        if (model.TreatWhitespaceAsSuffix)
        {
            throw new NotSupportedException($"{path}: treat_whitespace_as_suffix=true is not supported; supported: false.");
        }
        _model = model;
        for (int id = 0; id < model.Pieces.Count; id++)
        {
            var piece = model.Pieces[id];
            bool normal = piece.Type is SentencePieceType.Normal or SentencePieceType.UserDefined or SentencePieceType.Unused;
            if (!(normal ? _pieces : _reserved).TryAdd(piece.Piece, id))
            {
                throw new InvalidDataException($"{path}: piece \"{piece.Piece}\" is defined twice.");
            }
        }
        _lookup = _pieces.GetAlternateLookup<ReadOnlySpan<char>>();
        // Longest first: the library's prefix matcher takes the longest user-defined piece at a position.
        _userDefined = [.. model.Pieces.Where(p => p.Type == SentencePieceType.UserDefined).Select(p => p.Piece).OrderByDescending(p => p.Length)];
        for (int b = 0; b < 256; b++)
        {
            _byteIds[b] = PieceToId($"<0x{b:X2}>");
        }
    }

    public List<int> Encode(string text)
    {
        var ids = new List<int>();
        string normalized = Normalize(text);
        if (normalized.Length == 0)
        {
            return ids;
        }
        bool previousUnknown = false;
        foreach (var (start, length) in Merge(normalized))
        {
            string piece = normalized.Substring(start, length);
            int id = PieceToId(piece);
            bool unknown = id == _model.UnkId;
            if (unknown && _model.ByteFallback)
            {
                foreach (byte b in Encoding.UTF8.GetBytes(piece))
                {
                    ids.Add(_byteIds[b]);
                }
            }
            else if (!(unknown && previousUnknown))
            {
                ids.Add(id); // a run of unknown pieces is one unknown id
            }
            previousUnknown = unknown;
        }
        return ids;
    }

    private int PieceToId(string piece) =>
        _reserved.TryGetValue(piece, out int reserved) ? reserved : _pieces.TryGetValue(piece, out int id) ? id : _model.UnkId;

    /// <summary>normalizer.cc Normalize with the identity rule: only ' ' is whitespace here.</summary>
    private string Normalize(string text)
    {
        bool removeExtra = _model.RemoveExtraWhitespaces;
        char space = _model.EscapeWhitespaces ? Space : ' ';
        int i = 0;
        if (removeExtra)
        {
            while (i < text.Length && text[i] == ' ')
            {
                i++;
            }
        }
        if (i == text.Length)
        {
            return "";
        }
        var sb = new StringBuilder(text.Length + 1);
        if (_model.AddDummyPrefix)
        {
            sb.Append(space);
        }
        bool previousSpace = removeExtra;
        for (; i < text.Length; i++)
        {
            char c = text[i];
            if (c == ' ')
            {
                if (!previousSpace)
                {
                    sb.Append(space);
                }
                previousSpace = removeExtra;
            }
            else
            {
                sb.Append(c);
                previousSpace = false;
            }
        }
        if (removeExtra)
        {
            while (sb.Length > 0 && sb[^1] == space)
            {
                sb.Length--;
            }
        }
        return sb.ToString();
    }

    private struct Symbol
    {
        public int Start;
        public int Length;
        public int Prev;
        public int Next;
        public bool Freeze;
    }

    /// <summary>bpe_model.cc SampleEncode without dropout: the final pieces as (start, length) in <paramref name="text"/>.</summary>
    private List<(int Start, int Length)> Merge(string text)
    {
        var symbols = new List<Symbol>(text.Length);
        for (int i = 0; i < text.Length;)
        {
            int length = char.IsSurrogatePair(text, i) ? 2 : 1;
            bool freeze = false;
            foreach (string user in _userDefined)
            {
                if (string.CompareOrdinal(text, i, user, 0, user.Length) == 0)
                {
                    length = user.Length;
                    freeze = true;
                    break;
                }
            }
            int index = symbols.Count;
            symbols.Add(new Symbol { Start = i, Length = length, Prev = index - 1, Next = i + length < text.Length ? index + 1 : -1, Freeze = freeze });
            i += length;
        }

        // Highest score first, then the leftmost pair: the library's SymbolPairComparator.
        var agenda = new PriorityQueue<(int Left, int Right, int Size), (float NegScore, int Left)>();
        var reverseMerges = new Dictionary<(int Start, int Length), ((int, int) Left, (int, int) Right)>();
        void MaybeAdd(int left, int right)
        {
            if (left == -1 || right == -1 || symbols[left].Freeze || symbols[right].Freeze)
            {
                return;
            }
            int size = symbols[left].Length + symbols[right].Length;
            if (!_lookup.TryGetValue(text.AsSpan(symbols[left].Start, size), out int id))
            {
                return;
            }
            agenda.Enqueue((left, right, size), (-_model.Pieces[id].Score, left));
            if (_model.Pieces[id].Type == SentencePieceType.Unused)
            {
                reverseMerges[(symbols[left].Start, size)] = ((symbols[left].Start, symbols[left].Length), (symbols[right].Start, symbols[right].Length));
            }
        }
        for (int i = 1; i < symbols.Count; i++)
        {
            MaybeAdd(i - 1, i);
        }
        while (agenda.TryDequeue(out var top, out _))
        {
            var left = symbols[top.Left];
            var right = symbols[top.Right];
            if (left.Length == 0 || right.Length == 0 || left.Length + right.Length != top.Size)
            {
                continue;
            }
            left.Length += right.Length;
            left.Next = right.Next;
            symbols[top.Left] = left;
            if (right.Next >= 0)
            {
                var after = symbols[right.Next];
                after.Prev = top.Left;
                symbols[right.Next] = after;
            }
            right.Length = 0;
            symbols[top.Right] = right;
            MaybeAdd(left.Prev, top.Left);
            MaybeAdd(top.Left, left.Next);
        }

        var output = new List<(int, int)>(symbols.Count);
        void Resegment(int start, int length)
        {
            if (_lookup.TryGetValue(text.AsSpan(start, length), out int id) && _model.Pieces[id].Type == SentencePieceType.Unused
                && reverseMerges.TryGetValue((start, length), out var parts))
            {
                Resegment(parts.Left.Item1, parts.Left.Item2);
                Resegment(parts.Right.Item1, parts.Right.Item2);
                return;
            }
            output.Add((start, length));
        }
        for (int index = 0; index != -1; index = symbols[index].Next)
        {
            Resegment(symbols[index].Start, symbols[index].Length);
        }
        return output;
    }
}

/// <summary>Added and control tokens cut out of the text first, the segments between them encoded by
/// <paramref name="inner"/>: how transformers' slow tokenizers hand text to SentencePiece.</summary>
internal sealed class AddedTokenEncoder(AddedTokenSplitter added, ITextEncoder inner) : ITextEncoder
{
    public List<int> Encode(string text)
    {
        var ids = new List<int>();
        foreach (var (segment, id, _) in added.Split(text))
        {
            if (id is int addedId)
            {
                ids.Add(addedId);
            }
            else
            {
                ids.AddRange(inner.Encode(segment));
            }
        }
        return ids;
    }
}
