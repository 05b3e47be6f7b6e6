using System.Text.Json;

namespace MoeCluster.Model.Tokenization;

/// <summary>
/// The token facts a checkpoint spreads over tokenizer_config.json, special_tokens_map.json, chat_template.jinja,
/// additional_chat_templates/, generation_config.json and config.json. Every file is optional; a present file that
/// is not valid JSON is an error naming it.
/// </summary>
internal sealed class CheckpointTokenSettings
{
    public bool? AddBosToken { get; private set; }
    public bool? AddEosToken { get; private set; }
    public string? BosToken { get; private set; }
    public string? EosToken { get; private set; }
    public string? PadToken { get; private set; }
    public string? UnkToken { get; private set; }
    /// <summary>Named chat templates as transformers holds them: a single template is "default".</summary>
    public Dictionary<string, string> ChatTemplates { get; private set; } = new(StringComparer.Ordinal);
    /// <summary>transformers' special_tokens_map: bos_token, eos_token, unk_token, sep_token, pad_token, cls_token,
    /// mask_token where set, as the text the chat template sees.</summary>
    public Dictionary<string, string> SpecialTokenTexts { get; } = new(StringComparer.Ordinal);
    public List<string> AdditionalSpecialTokens { get; private set; } = [];
    public List<AddedToken> AddedTokens { get; private set; } = [];

    public int? GenerationBosId { get; private set; }
    public List<int> GenerationEosIds { get; private set; } = [];
    public int? GenerationPadId { get; private set; }

    public int? ConfigBosId { get; private set; }
    public List<int> ConfigEosIds { get; private set; } = [];
    public int? ConfigPadId { get; private set; }

    public static CheckpointTokenSettings Read(string directory)
    {
        var settings = new CheckpointTokenSettings();
        settings.ReadTokenizerConfig(Path.Combine(directory, "tokenizer_config.json"));
        settings.ReadSpecialTokensMap(Path.Combine(directory, "special_tokens_map.json"));
        settings.ReadTemplateFiles(directory);
        settings.ReadIdsFrom(Path.Combine(directory, "generation_config.json"), generation: true);
        settings.ReadIdsFrom(Path.Combine(directory, "config.json"), generation: false);
        return settings;
    }

    private void ReadTokenizerConfig(string path)
    {
        if (!File.Exists(path))
        {
            return;
        }
        using var doc = JsonFile.Parse(path);
        var root = doc.RootElement;
        AddBosToken = root.GetBool("add_bos_token", path);
        AddEosToken = root.GetBool("add_eos_token", path);
        BosToken = root.GetTokenContent("bos_token", path);
        EosToken = root.GetTokenContent("eos_token", path);
        PadToken = root.GetTokenContent("pad_token", path);
        UnkToken = root.GetTokenContent("unk_token", path);
        ChatTemplates = ReadChatTemplates(root, path);
        AddedTokens = ReadAddedTokensDecoder(root, path);
        ReadSpecialTokenTexts(root, path);
    }

    private static readonly string[] SpecialTokenKeys = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

    private void ReadSpecialTokenTexts(JsonElement root, string path)
    {
        foreach (string key in SpecialTokenKeys)
        {
            if (!SpecialTokenTexts.ContainsKey(key) && root.GetTokenContent(key, path) is { } text)
            {
                SpecialTokenTexts[key] = text;
            }
        }
        if (AdditionalSpecialTokens.Count == 0 && root.Get("additional_special_tokens") is { ValueKind: JsonValueKind.Array } list)
        {
            AdditionalSpecialTokens = [.. list.EnumerateArray().Select((t, i) => t.ValueKind == JsonValueKind.String ? t.GetString()!
                : t.GetString("content", path) ?? throw JsonFile.Invalid(path, $"additional_special_tokens[{i}]", "a string or an object with \"content\""))];
        }
    }

    /// <summary>special_tokens_map.json fills what tokenizer_config.json leaves unset, as transformers' from_pretrained does.</summary>
    private void ReadSpecialTokensMap(string path)
    {
        if (!File.Exists(path))
        {
            return;
        }
        using var doc = JsonFile.Parse(path);
        var root = doc.RootElement;
        ReadSpecialTokenTexts(root, path);
        BosToken ??= root.GetTokenContent("bos_token", path);
        EosToken ??= root.GetTokenContent("eos_token", path);
        PadToken ??= root.GetTokenContent("pad_token", path);
        UnkToken ??= root.GetTokenContent("unk_token", path);
    }

    /// <summary>chat_template.jinja replaces tokenizer_config.json's template (transformers: "clobbers any template in
    /// the config"); additional_chat_templates/NAME.jinja add named ones.</summary>
    private void ReadTemplateFiles(string directory)
    {
        string file = Path.Combine(directory, "chat_template.jinja");
        if (File.Exists(file))
        {
            ChatTemplates = new(StringComparer.Ordinal) { ["default"] = File.ReadAllText(file) };
        }
        string extra = Path.Combine(directory, "additional_chat_templates");
        if (Directory.Exists(extra))
        {
            foreach (string template in Directory.GetFiles(extra, "*.jinja").Order(StringComparer.Ordinal))
            {
                ChatTemplates[Path.GetFileNameWithoutExtension(template)] = File.ReadAllText(template);
            }
        }
    }

    private void ReadIdsFrom(string path, bool generation)
    {
        if (!File.Exists(path))
        {
            return;
        }
        using var doc = JsonFile.Parse(path);
        var root = doc.RootElement;
        int? bos = root.GetInt("bos_token_id", path);
        List<int> eos = root.GetIntOrList("eos_token_id", path);
        int? pad = root.GetInt("pad_token_id", path);
        if (generation)
        {
            (GenerationBosId, GenerationEosIds, GenerationPadId) = (bos, eos, pad);
        }
        else
        {
            (ConfigBosId, ConfigEosIds, ConfigPadId) = (bos, eos, pad);
        }
    }

    /// <summary>A single template string (named "default"), or a list of {name, template}.</summary>
    private static Dictionary<string, string> ReadChatTemplates(JsonElement root, string path)
    {
        var templates = new Dictionary<string, string>(StringComparer.Ordinal);
        switch (root.Get("chat_template"))
        {
            case null:
                break;
            case { ValueKind: JsonValueKind.String } template:
                templates["default"] = template.GetString()!;
                break;
            case { ValueKind: JsonValueKind.Array } list:
                int i = 0;
                foreach (var item in list.EnumerateArray())
                {
                    string name = item.GetString("name", path) ?? throw JsonFile.Invalid(path, $"chat_template[{i}].name", "present");
                    templates[name] = item.GetString("template", path) ?? throw JsonFile.Invalid(path, $"chat_template[{i}].template", "present");
                    i++;
                }
                break;
            default:
                throw JsonFile.Invalid(path, "chat_template", "a string or a list of {name, template}");
        }
        return templates;
    }

    private static List<AddedToken> ReadAddedTokensDecoder(JsonElement root, string path)
    {
        var tokens = new List<AddedToken>();
        if (root.Get("added_tokens_decoder") is not { ValueKind: JsonValueKind.Object } decoder)
        {
            return tokens;
        }
        foreach (var entry in decoder.EnumerateObject())
        {
            if (!int.TryParse(entry.Name, out int id))
            {
                throw JsonFile.Invalid(path, $"added_tokens_decoder[\"{entry.Name}\"]", "keyed by an integer id");
            }
            tokens.Add(JsonFile.ReadAddedToken(entry.Value, path, $"added_tokens_decoder[\"{entry.Name}\"]", id));
        }
        return tokens;
    }
}
