using System.Globalization;
using System.Text;

namespace MoeCluster.Model.Tokenization;

/// <summary>
/// A checkpoint's tokenizer, read from its directory the way HF transformers reads it (AutoTokenizer, fast
/// tokenizer first): <c>tokenizer.json</c> when present — byte-level BPE (GPT-2, Qwen, OLMoE, Llama 3, DeepSeek-V3,
/// gpt-oss) or SentencePiece-style BPE with byte fallback (Llama 2, Mistral, Mixtral, Gemma) — else
/// <c>tokenizer.model</c>, run as the SentencePiece library runs it. BOS/EOS/PAD, the special-token texts and the
/// chat templates come from tokenizer_config.json, special_tokens_map.json, chat_template.jinja,
/// generation_config.json and config.json. Thread-safe for Encode and Decode.
/// </summary>
public sealed class ModelTokenizer
{
    public const string ByteLevelBpeKind = "byte-level-bpe";
    public const string SentencePieceBpeKind = "sentencepiece-bpe";

    private const string Supported =
        "Supported: BPE in tokenizer.json (byte-level, or SentencePiece-style with byte fallback) and SentencePiece BPE in tokenizer.model.";

    private readonly ITextEncoder _encoder;
    private readonly TokenTable _table;
    private readonly IReadOnlyDictionary<string, int> _tokenIds;
    private readonly int[] _prefixIds;
    private readonly int[] _suffixIds;

    private ModelTokenizer(string kind, string file, ITextEncoder encoder, TokenTable table, IReadOnlyDictionary<string, int> tokenIds,
        int[] prefixIds, int[] suffixIds, ResolvedIds ids, CheckpointTokenSettings settings, IReadOnlyDictionary<string, int> specialTokens)
    {
        Kind = kind;
        TokenizerFile = file;
        _encoder = encoder;
        _table = table;
        _tokenIds = tokenIds;
        _prefixIds = prefixIds;
        _suffixIds = suffixIds;
        BosTokenId = ids.Bos;
        EosTokenIds = ids.Eos;
        PadTokenId = ids.Pad;
        ChatTemplates = settings.ChatTemplates;
        SpecialTokenTexts = settings.SpecialTokenTexts;
        AdditionalSpecialTokens = settings.AdditionalSpecialTokens;
        SpecialTokens = specialTokens;
        VocabSize = table.Size;
    }

    /// <summary><see cref="ByteLevelBpeKind"/> or <see cref="SentencePieceBpeKind"/>.</summary>
    public string Kind { get; }

    /// <summary>The file the ids come from: tokenizer.json or tokenizer.model.</summary>
    public string TokenizerFile { get; }

    public int? BosTokenId { get; }

    /// <summary>Every id that ends generation: generation_config.json, tokenizer_config.json and config.json together.</summary>
    public IReadOnlyList<int> EosTokenIds { get; }

    public int? PadTokenId { get; }

    /// <summary>Highest token id plus one, added tokens included.</summary>
    public int VocabSize { get; }

    /// <summary>The checkpoint's chat templates by name (a single template is "default"), raw Jinja source.</summary>
    public IReadOnlyDictionary<string, string> ChatTemplates { get; }

    /// <summary>The "default" chat template, when the checkpoint has one.</summary>
    public string? ChatTemplate => ChatTemplates.TryGetValue("default", out var t) ? t : null;

    /// <summary>transformers' special_tokens_map (bos_token, eos_token, ... where set) as the chat template sees it:
    /// the text tokenizer_config.json names, not an id picked from generation_config.json.</summary>
    public IReadOnlyDictionary<string, string> SpecialTokenTexts { get; }

    public IReadOnlyList<string> AdditionalSpecialTokens { get; }

    /// <summary>Special tokens (skipped by Decode with skipSpecialTokens) by their text.</summary>
    public IReadOnlyDictionary<string, int> SpecialTokens { get; }

    /// <summary>
    /// Loads the tokenizer in <paramref name="modelDirectory"/>; null when it holds neither tokenizer.json nor
    /// tokenizer.model. Throws <see cref="InvalidDataException"/> for a damaged file and
    /// <see cref="NotSupportedException"/> for a tokenizer type or step we do not run, naming the file either way.
    /// </summary>
    public static ModelTokenizer? Load(string modelDirectory)
    {
        if (!Directory.Exists(modelDirectory))
        {
            throw new DirectoryNotFoundException($"Model directory {modelDirectory} does not exist.");
        }
        string jsonPath = Path.Combine(modelDirectory, "tokenizer.json");
        string sentencePiecePath = Path.Combine(modelDirectory, "tokenizer.model");
        if (File.Exists(jsonPath))
        {
            TokenizerJsonFile json;
            try
            {
                json = TokenizerJsonFile.Read(jsonPath);
            }
            catch (NotSupportedException ex) when (!ex.Message.Contains("Supported:", StringComparison.Ordinal))
            {
                throw new NotSupportedException($"{ex.Message} {Supported}", ex);
            }
            return FromTokenizerJson(json, CheckpointTokenSettings.Read(modelDirectory));
        }
        if (File.Exists(sentencePiecePath))
        {
            return FromSentencePiece(sentencePiecePath, CheckpointTokenSettings.Read(modelDirectory));
        }
        return null;
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

    private static ModelTokenizer FromTokenizerJson(TokenizerJsonFile json, CheckpointTokenSettings settings)
    {
        var added = MergeAddedTokens(json.AddedTokens, settings.AddedTokens);
        var tokenIds = new Dictionary<string, int>(json.Vocab, StringComparer.Ordinal);
        foreach (var token in added)
        {
            tokenIds[token.Content] = token.Id;
        }
        int size = Math.Max(json.Vocab.Count == 0 ? 0 : json.Vocab.Values.Max(), added.Count == 0 ? 0 : added.Max(t => t.Id)) + 1;
        var table = new TokenTable(size, json.Decoder.StripLeadingSpace, ByteFallbackPolicy.WholeRun);
        foreach (var (token, id) in json.Vocab)
        {
            if (json.Decoder.ByteFallback && ByteFallbackValue(token) is byte value)
            {
                table.SetFallbackByte(id, value);
            }
            else
            {
                table.Set(id, json.TokenBytes(token), special: false);
            }
        }
        foreach (var token in added)
        {
            // HF runs added tokens through the decoder too (a ByteLevel decoder keeps "<|im_start|>" as written).
            table.Set(token.Id, json.TokenBytes(token.Content), token.Special);
        }

        var ids = ResolveIds(json.Path, settings, tokenIds, fallbackBos: json.TemplatePrefixIds.FirstOrDefault(-1), fallbackEos: -1, fallbackPad: -1);
        int[] prefix = settings.AddBosToken is bool addBos ? (addBos ? [Require(ids.Bos, "add_bos_token", "a BOS token")] : []) : [.. json.TemplatePrefixIds];
        int[] suffix = settings.AddEosToken is bool addEos ? (addEos ? [Require(ids.TokenizerEos, "add_eos_token", "an EOS token")] : []) : [.. json.TemplateSuffixIds];
        var encoder = new TokenizerJsonEncoder(json, added);
        string kind = json.Decoder.ByteLevel ? ByteLevelBpeKind : SentencePieceBpeKind;
        return Build(kind, json.Path, encoder, table, tokenIds, prefix, suffix, ids, added, settings);
    }

    /// <summary>The byte of a "&lt;0xNN&gt;" byte-fallback token.</summary>
    private static byte? ByteFallbackValue(string token) =>
        token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
        && byte.TryParse(token.AsSpan(3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out byte value) ? value : null;

    private static ModelTokenizer FromSentencePiece(string path, CheckpointTokenSettings settings)
    {
        var model = SentencePieceModelFile.Read(path);
        if (model.ModelType != SentencePieceModelFile.BpeModelType)
        {
            throw new NotSupportedException($"{path}: SentencePiece model type {model.ModelTypeName} is not supported. {Supported}");
        }
        var added = MergeAddedTokens([], settings.AddedTokens);
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
        var table = new TokenTable(size, stripLeadingSpace: model.AddDummyPrefix, ByteFallbackPolicy.PerByte);
        // Control and unknown pieces (<s>, </s>, <unk>) are matched whole in text, as transformers' slow tokenizer
        // matches its special tokens before SentencePiece sees the text.
        var matchedWhole = new List<AddedToken>();
        for (int id = 0; id < model.Pieces.Count; id++)
        {
            var piece = model.Pieces[id];
            bool control = piece.Type is SentencePieceType.Control or SentencePieceType.Unknown;
            if (piece.Type == SentencePieceType.Byte)
            {
                table.SetFallbackByte(id, ByteFallbackValue(piece.Piece) ?? throw new InvalidDataException($"{path}: byte piece {id} is \"{piece.Piece}\", expected <0xNN>."));
                continue;
            }
            table.Set(id, PieceBytes(piece, model.EscapeWhitespaces), special: control);
            if (control && piece.Piece.Length > 0)
            {
                matchedWhole.Add(new AddedToken(piece.Piece, id, Special: true));
            }
        }
        foreach (var token in added)
        {
            table.Set(token.Id, Encoding.UTF8.GetBytes(token.Content), token.Special);
            matchedWhole.Add(token with { Normalized = false });
        }

        int ValidPiece(int id) => id >= 0 && id < model.Pieces.Count ? id : -1;
        var ids = ResolveIds(path, settings, tokenIds, ValidPiece(model.BosId), ValidPiece(model.EosId), ValidPiece(model.PadId));
        // Llama and Mixtral checkpoints start every sequence with <s> unless tokenizer_config.json says otherwise.
        int[] prefix = (settings.AddBosToken ?? true) ? [Require(ids.Bos, "add_bos_token", "a BOS token")] : [];
        int[] suffix = (settings.AddEosToken ?? false) ? [Require(ids.TokenizerEos, "add_eos_token", "an EOS token")] : [];
        var encoder = new AddedTokenEncoder(new AddedTokenSplitter(matchedWhole), new SentencePieceBpeEncoder(model, path));
        return Build(SentencePieceBpeKind, path, encoder, table, tokenIds, prefix, suffix, ids, added, settings);
    }

    private static byte[] PieceBytes(SentencePiece piece, bool escapedWhitespace)
    {
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

    private static ModelTokenizer Build(string kind, string file, ITextEncoder encoder, TokenTable table, Dictionary<string, int> tokenIds,
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
        return new ModelTokenizer(kind, file, encoder, table, tokenIds, prefix, suffix, ids, settings, special);
    }
}
