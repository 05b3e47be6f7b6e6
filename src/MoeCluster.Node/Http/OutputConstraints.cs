using System.Text.Json;
using MoeCluster.Node.Chat;

namespace MoeCluster.Node.Http;

public enum ResponseFormatKind { Text, JsonObject, JsonSchema }

/// <summary>OpenAI's <c>response_format</c>: plain text, any JSON object, or JSON valid against a schema.</summary>
public sealed record ResponseFormat(ResponseFormatKind Kind, string? SchemaName = null, JsonElement? Schema = null, bool Strict = false)
{
    public static readonly ResponseFormat Text = new(ResponseFormatKind.Text);

    public static ResponseFormat Parse(JsonElement body)
    {
        if (JsonFields.Object(body, "response_format") is not { } rf) return Text;
        string type = JsonFields.String(rf, "type", "response_format.type") ?? throw ApiException.MissingField("response_format.type");
        switch (type)
        {
            case "text":
                RequestFields.Check(rf, new HashSet<string> { "type" }, "response_format");
                return Text;
            case "json_object":
                RequestFields.Check(rf, new HashSet<string> { "type" }, "response_format");
                return new ResponseFormat(ResponseFormatKind.JsonObject);
            case "json_schema":
                RequestFields.Check(rf, new HashSet<string> { "type", "json_schema" }, "response_format");
                var js = JsonFields.Object(rf, "json_schema", "response_format.json_schema") ?? throw ApiException.MissingField("response_format.json_schema");
                RequestFields.Check(js, new HashSet<string> { "name", "description", "schema", "strict" }, "response_format.json_schema");
                string name = JsonFields.String(js, "name", "response_format.json_schema.name") ?? throw ApiException.MissingField("response_format.json_schema.name");
                JsonFields.String(js, "description", "response_format.json_schema.description");
                var schema = JsonFields.Get(js, "schema") is { } s
                    ? (s.ValueKind is JsonValueKind.Object or JsonValueKind.True ? s.Clone() : throw ApiException.WrongType("response_format.json_schema.schema", "a JSON Schema object"))
                    : (JsonElement?)null;
                return new ResponseFormat(ResponseFormatKind.JsonSchema, name, schema, JsonFields.Bool(js, "strict", "response_format.json_schema.strict") ?? false);
            default:
                throw ApiException.BadRequest("response_format.type", $"'response_format.type' must be text, json_object or json_schema; got '{type}'");
        }
    }
}

public enum ToolChoiceMode { None, Auto, Required, Named }

/// <summary>OpenAI's <c>tool_choice</c>: none, auto (the default with tools), required, or one named function.</summary>
public sealed record ToolChoice(ToolChoiceMode Mode, string? Function = null)
{
    public static ToolChoice Parse(JsonElement body, IReadOnlyList<ToolDefinition> tools)
    {
        if (JsonFields.Get(body, "tool_choice") is not { } tc) return new(tools.Count > 0 ? ToolChoiceMode.Auto : ToolChoiceMode.None);
        ToolChoice choice;
        if (tc.ValueKind == JsonValueKind.String)
            choice = tc.GetString() switch
            {
                "none" => new(ToolChoiceMode.None),
                "auto" => new(ToolChoiceMode.Auto),
                "required" => new(ToolChoiceMode.Required),
                var other => throw ApiException.BadRequest("tool_choice", $"'tool_choice' must be none, auto, required or a named function; got '{other}'"),
            };
        else if (tc.ValueKind == JsonValueKind.Object)
        {
            RequestFields.Check(tc, new HashSet<string> { "type", "function" }, "tool_choice");
            if (JsonFields.String(tc, "type", "tool_choice.type") is not "function")
                throw ApiException.BadRequest("tool_choice.type", "'tool_choice.type' must be 'function'");
            var f = JsonFields.Object(tc, "function", "tool_choice.function") ?? throw ApiException.MissingField("tool_choice.function");
            RequestFields.Check(f, new HashSet<string> { "name" }, "tool_choice.function");
            string name = JsonFields.String(f, "name", "tool_choice.function.name") ?? throw ApiException.MissingField("tool_choice.function.name");
            choice = new(ToolChoiceMode.Named, name);
        }
        else throw ApiException.WrongType("tool_choice", "a string or an object");
        if (choice.Mode is ToolChoiceMode.Required or ToolChoiceMode.Named && tools.Count == 0)
            throw ApiException.BadRequest("tool_choice", "tool_choice needs 'tools'");
        if (choice.Mode == ToolChoiceMode.Named && tools.All(t => t.Name != choice.Function))
            throw ApiException.BadRequest("tool_choice.function.name", $"no tool is named '{choice.Function}'");
        return choice;
    }

    public static IReadOnlyList<ToolDefinition> ParseTools(JsonElement body)
    {
        if (JsonFields.Get(body, "tools") is not { } tools) return [];
        if (tools.ValueKind != JsonValueKind.Array) throw ApiException.WrongType("tools", "an array of tools");
        if (tools.GetArrayLength() > 128) throw ApiException.BadRequest("tools", "at most 128 tools are allowed");
        var list = new List<ToolDefinition>();
        int i = 0;
        foreach (var t in tools.EnumerateArray())
        {
            string at = $"tools[{i++}]";
            if (t.ValueKind != JsonValueKind.Object) throw ApiException.WrongType(at, "a tool object");
            RequestFields.Check(t, new HashSet<string> { "type", "function" }, at);
            if (JsonFields.String(t, "type", $"{at}.type") is not "function") throw ApiException.BadRequest($"{at}.type", $"'{at}.type' must be 'function'");
            var f = JsonFields.Object(t, "function", $"{at}.function") ?? throw ApiException.MissingField($"{at}.function");
            RequestFields.Check(f, new HashSet<string> { "name", "description", "parameters", "strict" }, $"{at}.function");
            string name = JsonFields.String(f, "name", $"{at}.function.name") ?? throw ApiException.MissingField($"{at}.function.name");
            if (name.Length is 0 or > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
                throw ApiException.BadRequest($"{at}.function.name", "a function name must be 1 to 64 characters of a-z, A-Z, 0-9, _ and -");
            if (list.Any(d => d.Name == name)) throw ApiException.BadRequest($"{at}.function.name", $"two tools are named '{name}'");
            string? parameters = JsonFields.Get(f, "parameters") is { } p
                ? (p.ValueKind == JsonValueKind.Object ? p.GetRawText() : throw ApiException.WrongType($"{at}.function.parameters", "a JSON Schema object"))
                : null;
            list.Add(new ToolDefinition(name, JsonFields.String(f, "description", $"{at}.function.description"), parameters,
                JsonFields.Bool(f, "strict", $"{at}.function.strict") ?? false));
        }
        return list;
    }
}
