using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace MoeCluster.Model.Tokenization;

/// <summary>How ids turn back into text, read from tokenizer.json's <c>decoder</c>.</summary>
/// <param name="ByteLevel">Tokens are spelled in the GPT-2 byte alphabet (ByteLevel decoder).</param>
/// <param name="SpaceReplacement">The character that stands for a space ('▁' in SentencePiece-style vocabularies).</param>
/// <param name="ByteFallback">&lt;0xNN&gt; tokens are raw bytes (ByteFallback decoder).</param>
/// <param name="StripLeadingSpace">One leading space comes off the text (Strip or Metaspace decoder).</param>
internal sealed record DecoderSpec(bool ByteLevel, char? SpaceReplacement, bool ByteFallback, bool StripLeadingSpace);

/// <summary>
/// A HF <c>tokenizer.json</c>: the BPE model, added tokens, normaliser, pre-tokeniser, post-processor and decoder,
/// each step read into the classes that run it. A step this reader does not know is refused with an error naming it
/// and the supported ones, never skipped: skipping would silently give the model different ids.
/// </summary>
internal sealed class TokenizerJsonFile
{
    /// <summary>GPT-2's split, used by HF's ByteLevel pre-tokenizer when use_regex is true.</summary>
    public const string Gpt2SplitPattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public const string SupportedNormalizers = "Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace, Prepend";
    public const string SupportedPreTokenizers = "Sequence, ByteLevel, Split, Metaspace, Digits, WhitespaceSplit, Punctuation, CharDelimiterSplit";
    public const string SupportedDecoders = "ByteLevel, Metaspace, Sequence of Replace(\"▁\" -> \" \"), ByteFallback, Fuse and Strip(\" \", 1, 0)";

    private JsonElement _model;

    public required string Path { get; init; }
    public required string ModelType { get; init; }
    public required IReadOnlyList<AddedToken> AddedTokens { get; init; }
    public NormalizerStep? Normalizer { get; private init; }
    public PreTokenizerStep? PreTokenizer { get; private init; }
    public required DecoderSpec Decoder { get; init; }
    public Dictionary<string, int> Vocab { get; private init; } = [];

    /// <summary>Ids the post-processor puts before / after a single sequence (e.g. Llama 3's begin_of_text).</summary>
    public List<int> TemplatePrefixIds { get; private init; } = [];
    public List<int> TemplateSuffixIds { get; private init; } = [];

    public static TokenizerJsonFile Read(string path)
    {
        using var doc = JsonFile.Parse(path);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"{path}: expected a JSON object at the top level, found {root.ValueKind}.");
        }
        var model = root.Get("model") ?? throw new InvalidDataException($"{path}: no \"model\" section.");
        string modelType = model.GetString("type", path)
            ?? (model.Get("merges") is not null ? "BPE" : throw new InvalidDataException($"{path}: \"model\" has no \"type\"."));
        if (modelType != "BPE")
        {
            throw new NotSupportedException($"{path}: tokenizer model type \"{modelType}\" is not supported; supported: BPE (byte-level or SentencePiece-style).");
        }
        if (model.Get("dropout") is { ValueKind: JsonValueKind.Number } dropout && dropout.GetDouble() > 0)
        {
            throw new NotSupportedException($"{path}: BPE dropout ({dropout.GetDouble()}) is a training setting; inference needs model.dropout null.");
        }
        var preTokenizer = ReadPreTokenizer(root.Get("pre_tokenizer"), path, "pre_tokenizer");
        var (prefix, suffix) = ReadPostProcessor(root.Get("post_processor"), path);
        return new TokenizerJsonFile
        {
            Path = path,
            ModelType = modelType,
            AddedTokens = ReadAddedTokens(root, path),
            Normalizer = ReadNormalizer(root.Get("normalizer"), path, "normalizer"),
            PreTokenizer = preTokenizer,
            Decoder = ReadDecoder(root.Get("decoder"), path, preTokenizer),
            Vocab = ReadVocab(model, path),
            TemplatePrefixIds = prefix,
            TemplateSuffixIds = suffix,
            // Detached: the BPE model is built from it after the document is disposed.
            _model = model.Clone(),
        };
    }

    /// <summary>The BPE model; built once per tokenizer (merges are only needed here).</summary>
    public BpeModel CreateModel() => new(Vocab, ReadMerges(_model, Path), _model.GetString("unk_token", Path),
        _model.GetBool("byte_fallback", Path) ?? false, _model.GetBool("fuse_unk", Path) ?? false,
        _model.GetBool("ignore_merges", Path) ?? false, _model.GetString("continuing_subword_prefix", Path),
        _model.GetString("end_of_word_suffix", Path), Path);

    private static List<AddedToken> ReadAddedTokens(JsonElement root, string path)
    {
        var tokens = new List<AddedToken>();
        if (root.Get("added_tokens") is not { } list)
        {
            return tokens;
        }
        if (list.ValueKind != JsonValueKind.Array)
        {
            throw JsonFile.Invalid(path, "added_tokens", "a list");
        }
        foreach (var item in list.EnumerateArray())
        {
            tokens.Add(JsonFile.ReadAddedToken(item, path, "added_tokens[]",
                item.GetInt("id", path) ?? throw JsonFile.Invalid(path, "added_tokens[].id", "present")));
        }
        return tokens;
    }

    private static Dictionary<string, int> ReadVocab(JsonElement model, string path)
    {
        if (model.Get("vocab") is not { ValueKind: JsonValueKind.Object } vocab)
        {
            throw JsonFile.Invalid(path, "model.vocab", "an object of token -> id");
        }
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in vocab.EnumerateObject())
        {
            int id = entry.Value.ValueKind == JsonValueKind.Number && entry.Value.TryGetInt32(out int i)
                ? i
                : throw JsonFile.Invalid(path, $"model.vocab[\"{entry.Name}\"]", "an integer id");
            if (id < 0)
            {
                throw new InvalidDataException($"{path}: model.vocab[\"{entry.Name}\"] has negative id {id}.");
            }
            result[entry.Name] = id;
        }
        return result;
    }

    /// <summary>Merges come as "a b" strings (older files) or as ["a", "b"] pairs (tokenizers 0.20+).</summary>
    private static List<(string, string)> ReadMerges(JsonElement model, string path)
    {
        var merges = new List<(string, string)>();
        if (model.Get("merges") is not { } list)
        {
            return merges;
        }
        if (list.ValueKind != JsonValueKind.Array)
        {
            throw JsonFile.Invalid(path, "model.merges", "a list");
        }
        int index = 0;
        foreach (var item in list.EnumerateArray())
        {
            if (item.ValueKind == JsonValueKind.String)
            {
                string text = item.GetString()!;
                int space = text.IndexOf(' ');
                if (space <= 0 || space == text.Length - 1 || text.IndexOf(' ', space + 1) >= 0)
                {
                    throw JsonFile.Invalid(path, $"model.merges[{index}]", $"two tokens separated by one space, found \"{text}\"");
                }
                merges.Add((text[..space], text[(space + 1)..]));
            }
            else if (item.ValueKind == JsonValueKind.Array && item.GetArrayLength() == 2
                     && item[0].ValueKind == JsonValueKind.String && item[1].ValueKind == JsonValueKind.String)
            {
                merges.Add((item[0].GetString()!, item[1].GetString()!));
            }
            else
            {
                throw JsonFile.Invalid(path, $"model.merges[{index}]", $"\"a b\" or [\"a\", \"b\"], found {item.ValueKind}");
            }
            index++;
        }
        return merges;
    }

    private static NormalizerStep? ReadNormalizer(JsonElement? element, string path, string field)
    {
        if (element is not { } n)
        {
            return null;
        }
        string type = n.GetString("type", path) ?? throw JsonFile.Invalid(path, $"{field}.type", "present");
        return type switch
        {
            "Sequence" => new SequenceStep(List(n, "normalizers", path, field)
                .Select((item, i) => ReadNormalizer(item, path, $"{field}.normalizers[{i}]")!).ToList()),
            "NFC" => new UnicodeFormStep(NormalizationForm.FormC),
            "NFD" => new UnicodeFormStep(NormalizationForm.FormD),
            "NFKC" => new UnicodeFormStep(NormalizationForm.FormKC),
            "NFKD" => new UnicodeFormStep(NormalizationForm.FormKD),
            "Lowercase" => new LowercaseStep(),
            "Strip" => new StripStep(n.GetBool("strip_left", path) ?? true, n.GetBool("strip_right", path) ?? true),
            "Prepend" => new PrependStep(n.GetString("prepend", path) ?? throw JsonFile.Invalid(path, $"{field}.prepend", "present")),
            "Replace" => ReadReplace(n, path, field),
            _ => throw new NotSupportedException(
                $"{path}: {field} type \"{type}\" is not supported; supported normalizers: {SupportedNormalizers}."),
        };
    }

    private static ReplaceStep ReadReplace(JsonElement n, string path, string field)
    {
        string content = n.GetString("content", path) ?? throw JsonFile.Invalid(path, $"{field}.content", "present");
        var pattern = n.Get("pattern") ?? throw JsonFile.Invalid(path, $"{field}.pattern", "present");
        if (pattern.GetString("String", path) is { } literal)
        {
            return new ReplaceStep(literal, null, content);
        }
        string regex = pattern.GetString("Regex", path) ?? throw JsonFile.Invalid(path, $"{field}.pattern", "{\"String\": ...} or {\"Regex\": ...}");
        return new ReplaceStep(null, new TokenizerRegex(regex, path), content);
    }

    private static PreTokenizerStep? ReadPreTokenizer(JsonElement? element, string path, string field)
    {
        if (element is not { } p)
        {
            return null;
        }
        string type = p.GetString("type", path) ?? throw JsonFile.Invalid(path, $"{field}.type", "present");
        return type switch
        {
            "Sequence" => new SequencePreTokenizer(List(p, "pretokenizers", path, field)
                .Select((item, i) => ReadPreTokenizer(item, path, $"{field}.pretokenizers[{i}]")!).ToList()),
            "ByteLevel" => new ByteLevelPreTokenizer(p.GetBool("add_prefix_space", path) ?? true,
                (p.GetBool("use_regex", path) ?? true) ? new TokenizerRegex(Gpt2SplitPattern, path) : null),
            "Split" => ReadSplit(p, path, field),
            "Metaspace" => new MetaspacePreTokenizer(Replacement(p, path, field), PrependScheme(p, path), p.GetBool("split", path) ?? true),
            "Digits" => new DigitsPreTokenizer(p.GetBool("individual_digits", path) ?? false),
            "WhitespaceSplit" => new WhitespaceSplitPreTokenizer(),
            "Punctuation" => new PunctuationPreTokenizer(Behavior(p, path, field, "Isolated")),
            "CharDelimiterSplit" => new CharDelimiterPreTokenizer(
                p.GetString("delimiter", path) is [char d] ? d : throw JsonFile.Invalid(path, $"{field}.delimiter", "one character")),
            _ => throw new NotSupportedException(
                $"{path}: {field} type \"{type}\" is not supported; supported pre-tokenizers: {SupportedPreTokenizers}."),
        };
    }

    private static SplitPreTokenizer ReadSplit(JsonElement split, string path, string field)
    {
        var pattern = split.Get("pattern") ?? throw JsonFile.Invalid(path, $"{field}.pattern", "present");
        string regex = pattern.GetString("Regex", path)
            ?? (pattern.GetString("String", path) is { } literal ? Regex.Escape(literal)
                : throw JsonFile.Invalid(path, $"{field}.pattern", "{\"Regex\": ...} or {\"String\": ...}"));
        return new SplitPreTokenizer(new TokenizerRegex(regex, path), Behavior(split, path, field, null), split.GetBool("invert", path) ?? false);
    }

    private static SplitBehavior Behavior(JsonElement step, string path, string field, string? fallback)
    {
        string name = step.GetString("behavior", path) ?? fallback ?? throw JsonFile.Invalid(path, $"{field}.behavior", "present");
        return Enum.TryParse<SplitBehavior>(name, ignoreCase: false, out var behavior) && Enum.IsDefined(behavior)
            ? behavior
            : throw new NotSupportedException($"{path}: {field}.behavior \"{name}\" is not supported; supported: {string.Join(", ", Enum.GetNames<SplitBehavior>())}.");
    }

    private static char Replacement(JsonElement step, string path, string field) =>
        step.GetString("replacement", path) is [char c] ? c : throw JsonFile.Invalid(path, $"{field}.replacement", "one character");

    /// <summary>Metaspace's prepend_scheme, or the older add_prefix_space flag.</summary>
    private static string PrependScheme(JsonElement step, string path) =>
        step.GetString("prepend_scheme", path) ?? ((step.GetBool("add_prefix_space", path) ?? true) ? "always" : "never");

    private static DecoderSpec ReadDecoder(JsonElement? element, string path, PreTokenizerStep? preTokenizer)
    {
        if (element is not { } decoder)
        {
            // No decoder: only byte-level files are known to leave it out, and their tokens are byte-alphabet spellings.
            return Mentions(preTokenizer, typeof(ByteLevelPreTokenizer))
                ? new DecoderSpec(true, null, false, false)
                : throw new NotSupportedException($"{path}: no decoder; supported decoders: {SupportedDecoders}.");
        }
        var steps = new List<JsonElement>();
        if (decoder.GetString("type", path) == "Sequence")
        {
            steps.AddRange(List(decoder, "decoders", path, "decoder"));
        }
        else
        {
            steps.Add(decoder);
        }
        bool byteLevel = false, byteFallback = false, strip = false;
        char? space = null;
        foreach (var step in steps)
        {
            string type = step.GetString("type", path) ?? throw JsonFile.Invalid(path, "decoder.type", "present");
            switch (type)
            {
                case "ByteLevel": byteLevel = true; break;
                case "ByteFallback": byteFallback = true; break;
                case "Fuse": break; // the token table always joins tokens without separators
                case "Replace" when step.Get("pattern")?.GetString("String", path) is [char c] && step.GetString("content", path) == " ":
                    space = c;
                    break;
                case "Strip" when step.GetString("content", path) == " " && step.GetInt("start", path) == 1 && (step.GetInt("stop", path) ?? 0) == 0:
                    strip = true;
                    break;
                case "Metaspace":
                    space = Replacement(step, path, "decoder");
                    strip |= PrependScheme(step, path) != "never";
                    break;
                default:
                    throw new NotSupportedException($"{path}: decoder step {step.GetRawText()} is not supported; supported decoders: {SupportedDecoders}.");
            }
        }
        return new DecoderSpec(byteLevel, space, byteFallback, strip);
    }

    private static bool Mentions(PreTokenizerStep? step, Type type) => step switch
    {
        null => false,
        SequencePreTokenizer s => s.Steps.Any(x => Mentions(x, type)),
        _ => step.GetType() == type,
    };

    private static IEnumerable<JsonElement> List(JsonElement obj, string name, string path, string field) =>
        obj.Get(name) is { ValueKind: JsonValueKind.Array } list ? list.EnumerateArray().ToList() : throw JsonFile.Invalid(path, $"{field}.{name}", "a list");

    /// <summary>Special tokens the post-processor wraps around a single sequence; other processors add nothing.</summary>
    private static (List<int> Prefix, List<int> Suffix) ReadPostProcessor(JsonElement? element, string path)
    {
        var prefix = new List<int>();
        var suffix = new List<int>();
        if (element is not { } processor)
        {
            return (prefix, suffix);
        }
        switch (processor.GetString("type", path))
        {
            case "Sequence" when processor.Get("processors") is { ValueKind: JsonValueKind.Array } list:
                foreach (var item in list.EnumerateArray())
                {
                    var (p, s) = ReadPostProcessor(item, path);
                    prefix.AddRange(p);
                    suffix.AddRange(s);
                }
                break;
            case "TemplateProcessing" when processor.Get("single") is { ValueKind: JsonValueKind.Array } single:
                var specials = processor.Get("special_tokens");
                bool seenSequence = false;
                foreach (var piece in single.EnumerateArray())
                {
                    if (piece.Get("Sequence") is not null)
                    {
                        seenSequence = true;
                    }
                    else if (piece.Get("SpecialToken") is { } special)
                    {
                        string name = special.GetString("id", path) ?? throw JsonFile.Invalid(path, "post_processor.single[].SpecialToken.id", "present");
                        var ids = specials?.Get(name)?.GetIntOrList("ids", path)
                            ?? throw JsonFile.Invalid(path, $"post_processor.special_tokens[\"{name}\"]", "present");
                        (seenSequence ? suffix : prefix).AddRange(ids);
                    }
                }
                break;
            case "RobertaProcessing" or "BertProcessing":
                prefix.AddRange(PairId(processor, "cls", path));
                suffix.AddRange(PairId(processor, "sep", path));
                break;
        }
        return (prefix, suffix);
    }

    private static IEnumerable<int> PairId(JsonElement processor, string name, string path) =>
        processor.Get(name) is { ValueKind: JsonValueKind.Array } pair && pair.GetArrayLength() == 2 && pair[1].TryGetInt32(out int id)
            ? [id]
            : throw JsonFile.Invalid(path, $"post_processor.{name}", "[token, id]");

    /// <summary>The bytes a token stands for when decoded, given the decoder.</summary>
    public byte[] TokenBytes(string token) => Decoder.ByteLevel
        ? ByteLevelAlphabet.Decode(token)
        : Encoding.UTF8.GetBytes(Decoder.SpaceReplacement is char c ? token.Replace(c, ' ') : token);
}
