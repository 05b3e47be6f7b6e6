using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace MoeCluster.Model.Tokenization;

/// <summary>One pre-tokenizer split: HF's Split with behavior "Isolated" (matches and gaps both kept) or "Removed".</summary>
internal sealed record SplitStep(Regex Pattern, bool RemoveMatches);

/// <summary>
/// What MoeCluster needs from a HF <c>tokenizer.json</c>. Microsoft.ML.Tokenizers has no loader for this file
/// (dotnet/machinelearning #7197, #7451), so vocab, merges, added tokens, pre-tokenizer, normalizer and
/// post-processor are read here.
/// </summary>
internal sealed class TokenizerJsonFile
{
    /// <summary>GPT-2's split, used by HF's ByteLevel pre-tokenizer when use_regex is true.</summary>
    public const string Gpt2SplitPattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private const string SupportedPreTokenizers = "Sequence, ByteLevel, Split (Isolated/Removed), Digits";

    public required string Path { get; init; }
    public required string ModelType { get; init; }
    public required bool IsByteLevel { get; init; }
    public required IReadOnlyList<AddedToken> AddedTokens { get; init; }
    public Dictionary<string, int> Vocab { get; init; } = [];
    public List<(string Left, string Right)> Merges { get; init; } = [];
    public List<SplitStep> Splits { get; init; } = [];
    public bool AddPrefixSpace { get; init; }
    public List<NormalizationForm> Normalizations { get; init; } = [];
    public bool IgnoreMerges { get; init; }

    /// <summary>Ids the post-processor puts before / after a single sequence (e.g. Llama 3's begin_of_text).</summary>
    public List<int> TemplatePrefixIds { get; init; } = [];
    public List<int> TemplateSuffixIds { get; init; } = [];

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
        var added = ReadAddedTokens(root, path);
        bool byteLevel = modelType == "BPE" && (MentionsByteLevel(root.Get("pre_tokenizer")) || MentionsByteLevel(root.Get("decoder")));

        if (!byteLevel)
        {
            return new TokenizerJsonFile { Path = path, ModelType = modelType, IsByteLevel = false, AddedTokens = added };
        }

        var splits = new List<SplitStep>();
        bool addPrefixSpace = false;
        ReadPreTokenizer(root.Get("pre_tokenizer"), path, splits, ref addPrefixSpace);
        var normalizations = new List<NormalizationForm>();
        ReadNormalizer(root.Get("normalizer"), path, normalizations);
        var (prefix, suffix) = ReadPostProcessor(root.Get("post_processor"), path);

        return new TokenizerJsonFile
        {
            Path = path,
            ModelType = modelType,
            IsByteLevel = true,
            AddedTokens = added,
            Vocab = ReadVocab(model, path),
            Merges = ReadMerges(model, path),
            Splits = splits,
            AddPrefixSpace = addPrefixSpace,
            Normalizations = normalizations,
            IgnoreMerges = model.GetBool("ignore_merges", path) ?? false,
            TemplatePrefixIds = prefix,
            TemplateSuffixIds = suffix,
        };
    }

    private static bool MentionsByteLevel(JsonElement? element)
    {
        if (element is not { ValueKind: JsonValueKind.Object } obj)
        {
            return false;
        }
        if (obj.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "ByteLevel")
        {
            return true;
        }
        foreach (var listName in new[] { "pretokenizers", "decoders" })
        {
            if (obj.Get(listName) is { ValueKind: JsonValueKind.Array } list && list.EnumerateArray().Any(e => MentionsByteLevel(e)))
            {
                return true;
            }
        }
        return false;
    }

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
            int id = item.GetInt("id", path) ?? throw JsonFile.Invalid(path, "added_tokens[].id", "present");
            string content = item.GetString("content", path) ?? throw JsonFile.Invalid(path, "added_tokens[].content", "present");
            tokens.Add(new AddedToken(content, id, item.GetBool("special", path) ?? false));
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
            result[entry.Name] = entry.Value.ValueKind == JsonValueKind.Number && entry.Value.TryGetInt32(out int id)
                ? id
                : throw JsonFile.Invalid(path, $"model.vocab[\"{entry.Name}\"]", "an integer id");
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

    private static void ReadPreTokenizer(JsonElement? element, string path, List<SplitStep> splits, ref bool addPrefixSpace)
    {
        if (element is not { } pre)
        {
            return;
        }
        string type = pre.GetString("type", path) ?? throw JsonFile.Invalid(path, "pre_tokenizer.type", "present");
        switch (type)
        {
            case "Sequence":
                if (pre.Get("pretokenizers") is not { ValueKind: JsonValueKind.Array } list)
                {
                    throw JsonFile.Invalid(path, "pre_tokenizer.pretokenizers", "a list");
                }
                foreach (var item in list.EnumerateArray())
                {
                    ReadPreTokenizer(item, path, splits, ref addPrefixSpace);
                }
                break;
            case "ByteLevel":
                addPrefixSpace |= pre.GetBool("add_prefix_space", path) ?? false;
                if (pre.GetBool("use_regex", path) ?? true)
                {
                    splits.Add(new SplitStep(Compile(Gpt2SplitPattern, path), RemoveMatches: false));
                }
                break;
            case "Split":
                splits.Add(ReadSplit(pre, path));
                break;
            case "Digits":
                string digits = pre.GetBool("individual_digits", path) == true ? @"\p{N}" : @"\p{N}+";
                splits.Add(new SplitStep(Compile(digits, path), RemoveMatches: false));
                break;
            default:
                throw new NotSupportedException(
                    $"{path}: pre-tokenizer type \"{type}\" is not supported. Supported pre-tokenizers: {SupportedPreTokenizers}.");
        }
    }

    private static SplitStep ReadSplit(JsonElement split, string path)
    {
        var pattern = split.Get("pattern") ?? throw JsonFile.Invalid(path, "pre_tokenizer.pattern", "present");
        string regex = pattern.GetString("Regex", path)
            ?? (pattern.GetString("String", path) is { } literal ? Regex.Escape(literal)
                : throw JsonFile.Invalid(path, "pre_tokenizer.pattern", "{\"Regex\": ...} or {\"String\": ...}"));
        if (split.GetBool("invert", path) == true)
        {
            throw new NotSupportedException($"{path}: Split pre-tokenizer with invert=true is not supported.");
        }
        return (split.GetString("behavior", path) ?? "Isolated") switch
        {
            "Isolated" => new SplitStep(Compile(regex, path), RemoveMatches: false),
            "Removed" => new SplitStep(Compile(regex, path), RemoveMatches: true),
            var other => throw new NotSupportedException(
                $"{path}: Split pre-tokenizer behavior \"{other}\" is not supported. Supported behaviors: Isolated, Removed."),
        };
    }

    private static Regex Compile(string pattern, string path)
    {
        try
        {
            return new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        }
        catch (ArgumentException ex)
        {
            throw new NotSupportedException($"{path}: pre-tokenizer regex /{pattern}/ is not valid .NET regex syntax: {ex.Message}", ex);
        }
    }

    private static void ReadNormalizer(JsonElement? element, string path, List<NormalizationForm> forms)
    {
        if (element is not { } normalizer)
        {
            return;
        }
        string type = normalizer.GetString("type", path) ?? throw JsonFile.Invalid(path, "normalizer.type", "present");
        switch (type)
        {
            case "Sequence":
                if (normalizer.Get("normalizers") is not { ValueKind: JsonValueKind.Array } list)
                {
                    throw JsonFile.Invalid(path, "normalizer.normalizers", "a list");
                }
                foreach (var item in list.EnumerateArray())
                {
                    ReadNormalizer(item, path, forms);
                }
                break;
            case "NFC": forms.Add(NormalizationForm.FormC); break;
            case "NFD": forms.Add(NormalizationForm.FormD); break;
            case "NFKC": forms.Add(NormalizationForm.FormKC); break;
            case "NFKD": forms.Add(NormalizationForm.FormKD); break;
            default:
                throw new NotSupportedException(
                    $"{path}: normalizer type \"{type}\" is not supported for byte-level BPE. Supported normalizers: Sequence, NFC, NFD, NFKC, NFKD.");
        }
    }

    /// <summary>Special tokens the post-processor wraps around a single sequence; unknown processors add nothing.</summary>
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
}
