using System.Text.Json;

namespace MoeCluster.Model.Tokenization;

/// <summary>
/// The token facts a checkpoint spreads over tokenizer_config.json, generation_config.json and config.json.
/// Every file is optional; a present file that is not valid JSON is an error naming it.
/// </summary>
internal sealed class CheckpointTokenSettings
{
    public bool? AddBosToken { get; private set; }
    public bool? AddEosToken { get; private set; }
    public string? BosToken { get; private set; }
    public string? EosToken { get; private set; }
    public string? PadToken { get; private set; }
    public string? UnkToken { get; private set; }
    public string? ChatTemplate { get; private set; }
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
        ChatTemplate = ReadChatTemplate(root, path);
        AddedTokens = ReadAddedTokensDecoder(root, path);
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

    /// <summary>A single template string, or a list of {name, template} where "default" is the one used for chat.</summary>
    private static string? ReadChatTemplate(JsonElement root, string path)
    {
        switch (root.Get("chat_template"))
        {
            case null:
                return null;
            case { ValueKind: JsonValueKind.String } template:
                return template.GetString();
            case { ValueKind: JsonValueKind.Array } list:
                var named = list.EnumerateArray()
                    .Select(t => (Name: t.GetString("name", path), Template: t.GetString("template", path)))
                    .ToList();
                return named.FirstOrDefault(t => t.Name == "default").Template ?? named.FirstOrDefault().Template;
            default:
                throw JsonFile.Invalid(path, "chat_template", "a string or a list of {name, template}");
        }
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
            string content = entry.Value.GetString("content", path)
                ?? throw JsonFile.Invalid(path, $"added_tokens_decoder[\"{entry.Name}\"].content", "present");
            tokens.Add(new AddedToken(content, id, entry.Value.GetBool("special", path) ?? false));
        }
        return tokens;
    }
}
