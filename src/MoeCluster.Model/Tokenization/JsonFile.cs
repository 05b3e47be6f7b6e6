using System.Text.Json;

namespace MoeCluster.Model.Tokenization;

/// <summary>Reading the checkpoint's JSON files with errors that name the file and the field.</summary>
internal static class JsonFile
{
    public static JsonDocument Parse(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            return JsonDocument.Parse(stream, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{path} is not valid JSON: {ex.Message}", ex);
        }
    }

    /// <summary>The property, or null when it is absent or JSON null.</summary>
    public static JsonElement? Get(this JsonElement obj, string name) =>
        obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null
            ? value
            : null;

    public static string? GetString(this JsonElement obj, string name, string path) => obj.Get(name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } v => v.GetString(),
        var v => throw Invalid(path, name, $"a string, found {v.Value.ValueKind}"),
    };

    public static bool? GetBool(this JsonElement obj, string name, string path) => obj.Get(name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        var v => throw Invalid(path, name, $"true or false, found {v.Value.ValueKind}"),
    };

    public static int? GetInt(this JsonElement obj, string name, string path) => obj.Get(name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.Number } v when v.TryGetInt32(out int i) => i,
        var v => throw Invalid(path, name, $"an integer, found {v.Value.ValueKind}"),
    };

    /// <summary>An id given as an integer or a list of integers (generation_config.json's eos_token_id).</summary>
    public static List<int> GetIntOrList(this JsonElement obj, string name, string path)
    {
        var ids = new List<int>();
        switch (obj.Get(name))
        {
            case null:
                break;
            case { ValueKind: JsonValueKind.Array } array:
                foreach (var item in array.EnumerateArray())
                {
                    ids.Add(item.ValueKind == JsonValueKind.Number && item.TryGetInt32(out int i)
                        ? i
                        : throw Invalid(path, name, $"integers in the list, found {item.ValueKind}"));
                }
                break;
            case { ValueKind: JsonValueKind.Number } v when v.TryGetInt32(out int single):
                ids.Add(single);
                break;
            case var v:
                throw Invalid(path, name, $"an integer or a list of integers, found {v.Value.ValueKind}");
        }
        return ids;
    }

    /// <summary>A token given as a string or as an object with "content" (tokenizer_config.json's eos_token).</summary>
    public static string? GetTokenContent(this JsonElement obj, string name, string path) => obj.Get(name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } v => v.GetString(),
        { ValueKind: JsonValueKind.Object } v => v.GetString("content", path)
            ?? throw Invalid(path, name, "an object with \"content\""),
        var v => throw Invalid(path, name, $"a string or an object with \"content\", found {v.Value.ValueKind}"),
    };

    /// <summary>An added token as tokenizer.json's added_tokens and tokenizer_config.json's added_tokens_decoder write it;
    /// <c>normalized</c> defaults to the opposite of <c>special</c>, as in HF's AddedToken.</summary>
    public static AddedToken ReadAddedToken(JsonElement item, string path, string field, int id)
    {
        string content = item.GetString("content", path) ?? throw Invalid(path, $"{field}.content", "present");
        bool special = item.GetBool("special", path) ?? false;
        return new AddedToken(content, id, special, item.GetBool("normalized", path) ?? !special,
            item.GetBool("lstrip", path) ?? false, item.GetBool("rstrip", path) ?? false, item.GetBool("single_word", path) ?? false);
    }

    public static InvalidDataException Invalid(string path, string field, string expected) =>
        new($"{path}: field \"{field}\" must be {expected}.");
}
