using System.Globalization;
using System.Text;

namespace MoeCluster.Model.Tokenization;

/// <summary>
/// A checkpoint's tokenizer, read from its directory the way HF transformers reads it: <c>tokenizer.json</c> for
/// byte-level BPE (GPT-2, Qwen, OLMoE, Llama 3), <c>tokenizer.model</c> for SentencePiece BPE with byte fallback
/// (Llama, Mixtral), and BOS/EOS/PAD and the chat template from tokenizer_config.json, generation_config.json and
/// config.json. Thread-safe for Encode and Decode.
/// </summary>
public sealed class ModelTokenizer
{
    public const string ByteLevelBpeKind = "byte-level-bpe";
    public const string SentencePieceBpeKind = "sentencepiece-bpe";

    private const string Supported =
        "Supported: byte-level BPE in tokenizer.json (GPT-2, Qwen, OLMoE, Llama 3) and SentencePiece BPE in tokenizer.model (Llama, Mixtral).";

    private readonly ITextEncoder _encoder;
    private readonly TokenTable _table;
    private readonly IReadOnlyDictionary<string, int> _tokenIds;
    private readonly int[] _prefixIds;
    private readonly int[] _suffixIds;

    private ModelTokenizer(string kind, ITextEncoder encoder, TokenTable table, IReadOnlyDictionary<string, int> tokenIds,
        int[] prefixIds, int[] suffixIds, int? bos, IReadOnlyList<int> eos, int? pad, string? chatTemplate,
        IReadOnlyDictionary<string, int> specialTokens)
    {
        Kind = kind;
        _encoder = encoder;
        _table = table;
        _tokenIds = tokenIds;
        _prefixIds = prefixIds;
        _suffixIds = suffixIds;
        BosTokenId = bos;
        EosTokenIds = eos;
        PadTokenId = pad;
        ChatTemplate = chatTemplate;
        SpecialTokens = specialTokens;
        VocabSize = table.Size;
    }

    /// <summary><see cref="ByteLevelBpeKind"/> or <see cref="SentencePieceBpeKind"/>.</summary>
    public string Kind { get; }

    public int? BosTokenId { get; }

    /// <summary>Every id that ends generation: generation_config.json, tokenizer_config.json and config.json together.</summary>
    public IReadOnlyList<int> EosTokenIds { get; }

    public int? PadTokenId { get; }

    /// <summary>Highest token id plus one, added tokens included.</summary>
    public int VocabSize { get; }

    /// <summary>The raw Jinja chat template from tokenizer_config.json, when the checkpoint has one.</summary>
    public string? ChatTemplate { get; }

    /// <summary>Special tokens (skipped by Decode with skipSpecialTokens) by their text.</summary>
    public IReadOnlyDictionary<string, int> SpecialTokens { get; }

    /// <summary>
    /// Loads the tokenizer in <paramref name="modelDirectory"/>; null when it holds neither tokenizer.json nor
    /// tokenizer.model. Throws <see cref="InvalidDataException"/> for a damaged file and
    /// <see cref="NotSupportedException"/> for a tokenizer type we do not run, naming the file either way.
    /// </summary>
    public static ModelTokenizer? Load(string modelDirectory)
    {
        if (!Directory.Exists(modelDirectory))
        {
            throw new DirectoryNotFoundException($"Model directory {modelDirectory} does not exist.");
        }
        string jsonPath = Path.Combine(modelDirectory, "tokenizer.json");
        string sentencePiecePath = Path.Combine(modelDirectory, "tokenizer.model");
        bool hasJson = File.Exists(jsonPath);
        bool hasSentencePiece = File.Exists(sentencePiecePath);
        if (!hasJson && !hasSentencePiece)
        {
            return null;
        }

        var json = hasJson ? TokenizerJsonFile.Read(jsonPath) : null;
        var settings = CheckpointTokenSettings.Read(modelDirectory);
        if (json is { IsByteLevel: true })
        {
            return FromByteLevel(json, settings);
        }
        if (hasSentencePiece)
        {
            return FromSentencePiece(sentencePiecePath, json, settings);
        }
        string detail = json!.ModelType == "BPE"
            ? "BPE without a ByteLevel pre-tokenizer or decoder (SentencePiece-style BPE needs its tokenizer.model beside it)"
            : $"\"{json.ModelType}\"";
        throw new NotSupportedException($"{jsonPath}: tokenizer model type {detail} is not supported. {Supported}");
    }

    /// <summary>
    /// Text to ids. Added and special tokens written in the text become their single ids. With
    /// <paramref name="addSpecialTokens"/>, BOS (and EOS) are added only where the checkpoint asks for them.
    /// </summary>
    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = text.Length == 0 ? [] : _encoder.Encode(text);
        if (addSpecialTokens && (_prefixIds.Length > 0 || _suffixIds.Length > 0))
        {
            ids.InsertRange(0, _prefixIds);
            ids.AddRange(_suffixIds);
        }
        return ids;
    }

    /// <summary>Ids to text; ids outside the vocabulary are ignored, as HF does.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return _table.Decode(ids, skipSpecialTokens);
    }

    /// <summary>A detokenizer for one generated sequence, emitting text as soon as characters are complete.</summary>
    public StreamingDetokenizer CreateStreamingDetokenizer(bool skipSpecialTokens = true) => new(_table, skipSpecialTokens);

    /// <summary>Whether Decode with skipSpecialTokens drops <paramref name="id"/> (BOS, EOS, chat markers...).</summary>
    public bool IsSpecialToken(int id) => _table.IsSpecial(id);

    /// <summary>The UTF-8 bytes token <paramref name="id"/> stands for (special tokens included; empty outside the
    /// vocabulary). A token may hold part of a character: logprobs report these bytes, grammars match them.</summary>
    public byte[] TokenBytes(int id) => _table.BytesOf(id, skipSpecialTokens: false).ToArray();

    /// <summary>The id of a vocabulary entry or added token given in its file form (e.g. "&lt;|im_end|&gt;"), or null.</summary>
    public int? TokenToId(string token) => _tokenIds.TryGetValue(token, out int id) ? id : null;

    private static ModelTokenizer FromByteLevel(TokenizerJsonFile json, CheckpointTokenSettings settings)
    {
        var added = MergeAddedTokens(json.AddedTokens, settings.AddedTokens);
        var tokenIds = new Dictionary<string, int>(json.Vocab, StringComparer.Ordinal);
        foreach (var token in added)
        {
            tokenIds[token.Content] = token.Id;
        }
        int size = Math.Max(json.Vocab.Count == 0 ? 0 : json.Vocab.Values.Max(), added.Count == 0 ? 0 : added.Max(t => t.Id)) + 1;
        var table = new TokenTable(size, stripLeadingSpace: false);
        foreach (var (token, id) in json.Vocab)
        {
            if (id < 0)
            {
                throw new InvalidDataException($"{json.Path}: model.vocab[\"{token}\"] has negative id {id}.");
            }
            table.Set(id, ByteLevelAlphabet.Decode(token), special: false);
        }
        foreach (var token in added)
        {
            // Added tokens are stored as written, not in the byte alphabet.
            table.Set(token.Id, Encoding.UTF8.GetBytes(token.Content), token.Special);
        }

        var ids = ResolveIds(json.Path, settings, tokenIds, fallbackBos: json.TemplatePrefixIds.FirstOrDefault(-1), fallbackEos: -1, fallbackPad: -1);
        int[] prefix = settings.AddBosToken is bool addBos ? (addBos ? [Require(ids.Bos, "add_bos_token", "a BOS token")] : []) : [.. json.TemplatePrefixIds];
        int[] suffix = settings.AddEosToken is bool addEos ? (addEos ? [Require(ids.TokenizerEos, "add_eos_token", "an EOS token")] : []) : [.. json.TemplateSuffixIds];
        var encoder = new ByteLevelBpeEncoder(json, added);
        return Build(ByteLevelBpeKind, encoder, table, tokenIds, prefix, suffix, ids, added, settings);
    }

    private static ModelTokenizer FromSentencePiece(string path, TokenizerJsonFile? json, CheckpointTokenSettings settings)
    {
        var model = SentencePieceModelFile.Read(path);
        if (model.ModelType != SentencePieceModelFile.BpeModelType)
        {
            throw new NotSupportedException($"{path}: SentencePiece model type {model.ModelTypeName} is not supported. {Supported}");
        }
        var added = MergeAddedTokens(json?.AddedTokens ?? [], settings.AddedTokens);
        var tokenIds = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int id = 0; id < model.Pieces.Count; id++)
        {
            tokenIds.TryAdd(model.Pieces[id].Piece, id);
        }
        foreach (var token in added)
        {
            tokenIds[token.Content] = token.Id;
        }
        int size = Math.Max(model.Pieces.Count, added.Count == 0 ? 0 : added.Max(t => t.Id) + 1);
        var table = new TokenTable(size, stripLeadingSpace: model.AddDummyPrefix);
        // Control and unknown pieces (<s>, </s>, <unk>) are matched whole in text, like HF's added tokens.
        var matchedWhole = new Dictionary<int, string>();
        for (int id = 0; id < model.Pieces.Count; id++)
        {
            var piece = model.Pieces[id];
            bool control = piece.Type is SentencePieceType.Control or SentencePieceType.Unknown;
            table.Set(id, PieceBytes(piece, model.EscapeWhitespaces, path, id), special: control);
            if (control && piece.Piece.Length > 0)
            {
                matchedWhole[id] = piece.Piece;
            }
        }
        foreach (var token in added)
        {
            table.Set(token.Id, Encoding.UTF8.GetBytes(token.Content), token.Special);
            matchedWhole[token.Id] = token.Content;
        }
        var specialForEncoder = matchedWhole.GroupBy(kv => kv.Value, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First().Key, StringComparer.Ordinal);

        int ValidPiece(int id) => id >= 0 && id < model.Pieces.Count ? id : -1;
        var ids = ResolveIds(path, settings, tokenIds, ValidPiece(model.BosId), ValidPiece(model.EosId), ValidPiece(model.PadId));
        // Llama and Mixtral checkpoints start every sequence with <s> unless tokenizer_config.json says otherwise.
        int[] prefix = (settings.AddBosToken ?? true) ? [Require(ids.Bos, "add_bos_token", "a BOS token")] : [];
        int[] suffix = (settings.AddEosToken ?? false) ? [Require(ids.TokenizerEos, "add_eos_token", "an EOS token")] : [];
        var encoder = new SentencePieceBpeEncoder(path, specialForEncoder);
        return Build(SentencePieceBpeKind, encoder, table, tokenIds, prefix, suffix, ids, added, settings);
    }

    private static byte[] PieceBytes(SentencePiece piece, bool escapedWhitespace, string path, int id)
    {
        if (piece.Type == SentencePieceType.Byte)
        {
            // Byte pieces are spelled <0xNN>.
            string text = piece.Piece;
            if (text.Length == 6 && text.StartsWith("<0x", StringComparison.Ordinal) && text[5] == '>'
                && byte.TryParse(text.AsSpan(3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out byte value))
            {
                return [value];
            }
            throw new InvalidDataException($"{path}: byte piece {id} is \"{text}\", expected <0xNN>.");
        }
        string surface = escapedWhitespace && piece.Type is not (SentencePieceType.Control or SentencePieceType.Unknown)
            ? piece.Piece.Replace('▁', ' ')
            : piece.Piece;
        return Encoding.UTF8.GetBytes(surface);
    }

    /// <summary>tokenizer.json's added_tokens and tokenizer_config.json's added_tokens_decoder; the former wins on an id.</summary>
    private static List<AddedToken> MergeAddedTokens(IEnumerable<AddedToken> primary, IEnumerable<AddedToken> secondary)
    {
        var byId = new Dictionary<int, AddedToken>();
        foreach (var token in primary.Concat(secondary))
        {
            byId.TryAdd(token.Id, token);
        }
        return [.. byId.Values.OrderBy(t => t.Id)];
    }

    private sealed record ResolvedIds(int? Bos, int? TokenizerEos, List<int> Eos, int? Pad, int? Unk);

    /// <summary>
    /// BOS/EOS/PAD the way transformers sees them: the token named in tokenizer_config.json first, then the ids in
    /// generation_config.json and config.json, then what the tokenizer file itself defines.
    /// </summary>
    private static ResolvedIds ResolveIds(string path, CheckpointTokenSettings s, Dictionary<string, int> tokenIds,
        int fallbackBos, int fallbackEos, int fallbackPad)
    {
        int? Lookup(string? token, string field) => token is null ? null
            : tokenIds.TryGetValue(token, out int id) ? id
            : throw new InvalidDataException($"tokenizer_config.json {field} \"{token}\" is not in the vocabulary of {path}.");
        int? OrNull(int id) => id >= 0 ? id : null;

        int? bos = Lookup(s.BosToken, "bos_token") ?? s.GenerationBosId ?? s.ConfigBosId ?? OrNull(fallbackBos);
        int? tokenizerEos = Lookup(s.EosToken, "eos_token");
        var eos = new List<int>();
        foreach (int id in s.GenerationEosIds.Concat(tokenizerEos is int t ? [t] : []).Concat(s.ConfigEosIds))
        {
            if (!eos.Contains(id))
            {
                eos.Add(id);
            }
        }
        if (eos.Count == 0 && fallbackEos >= 0)
        {
            eos.Add(fallbackEos);
        }
        int? pad = Lookup(s.PadToken, "pad_token") ?? s.GenerationPadId ?? s.ConfigPadId ?? OrNull(fallbackPad);
        int? unk = Lookup(s.UnkToken, "unk_token");
        return new ResolvedIds(bos, tokenizerEos ?? (eos.Count > 0 ? eos[0] : null), eos, pad, unk);
    }

    private static int Require(int? id, string flag, string what) =>
        id ?? throw new InvalidDataException($"tokenizer_config.json sets {flag} but the checkpoint defines no {what}.");

    private static ModelTokenizer Build(string kind, ITextEncoder encoder, TokenTable table, Dictionary<string, int> tokenIds,
        int[] prefix, int[] suffix, ResolvedIds ids, List<AddedToken> added, CheckpointTokenSettings settings)
    {
        var special = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var token in added.Where(t => t.Special))
        {
            special.TryAdd(token.Content, token.Id);
        }
        // transformers' all_special_ids: the named BOS/EOS/PAD/UNK tokens are skipped in decode too.
        foreach (int? id in new[] { ids.Bos, ids.Pad, ids.Unk }.Concat(ids.Eos.Select(e => (int?)e)))
        {
            if (id is int value && (uint)value < (uint)table.Size)
            {
                table.MarkSpecial(value);
            }
        }
        foreach (var (token, id) in tokenIds)
        {
            if (table.IsSpecial(id))
            {
                special.TryAdd(token, id);
            }
        }
        return new ModelTokenizer(kind, encoder, table, tokenIds, prefix, suffix, ids.Bos, ids.Eos, ids.Pad,
            settings.ChatTemplate, special);
    }
}
