using System.Text.Json;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Grammar;
using MoeCluster.Model.Tokenization;
using MoeCluster.Node.Chat;

namespace MoeCluster.Node.Http;

/// <summary>The token constraint a request's output needs, by constrained decoding over the tokenizer's vocabulary:
/// a JSON grammar for response_format json_object/json_schema, the tool-call format (<see cref="ToolCallStream"/>) with
/// each function's parameters as the arguments' schema for tool_choice required or a named function; null for free
/// text. A schema the grammar cannot enforce is a 400 naming it.</summary>
public static class OutputConstraint
{
    public static Func<ITokenConstraint>? For(CompletionRequest r, ModelTokenizer? tokenizer, int vocab, IReadOnlySet<int> stopIds)
    {
        GrammarNode? root = null;
        if (r.ToolChoice.Mode is ToolChoiceMode.Required or ToolChoiceMode.Named)
        {
            var tools = r.ToolChoice.Mode == ToolChoiceMode.Named ? r.Tools.Where(t => t.Name == r.ToolChoice.Function).ToList() : r.Tools;
            var calls = tools.Select(t => (GrammarNode)new ObjectNode(
            [
                new PropertyNode("name", new LiteralNode(JsonSerializer.Serialize(t.Name)), Required: true),
                new PropertyNode("arguments", Parameters(t, r.Tools.ToList().IndexOf(t)), Required: true),
            ])).ToArray();
            root = new SequenceNode([new LiteralNode(ToolCallStream.Open + "\n"), calls.Length == 1 ? calls[0] : new ChoiceNode(calls), new LiteralNode("\n" + ToolCallStream.Close)]);
        }
        else if (r.ResponseFormat.Kind == ResponseFormatKind.JsonObject) root = JsonSchemaCompiler.AnyObject();
        else if (r.ResponseFormat.Kind == ResponseFormatKind.JsonSchema)
        {
            try { root = r.ResponseFormat.Schema is { } schema ? JsonSchemaCompiler.Compile(schema) : JsonSchemaCompiler.AnyObject(); }
            catch (GrammarException e) { throw ApiException.BadRequest("response_format.json_schema.schema", e.Message, "unsupported_value"); }
        }
        if (root is null) return null;
        if (tokenizer is null) throw ApiException.BadRequest(r.ToolChoice.Mode is ToolChoiceMode.None or ToolChoiceMode.Auto ? "response_format" : "tool_choice",
            "constrained output needs the model's tokenizer", "no_tokenizer");
        var trie = TokenTrie.For(tokenizer, vocab);
        var stops = stopIds.ToArray();
        return () => new GrammarConstraint(root, trie, stops);
    }

    static GrammarNode Parameters(ToolDefinition t, int index)
    {
        if (t.Parameters is null) return JsonSchemaCompiler.AnyObject();
        using var doc = JsonDocument.Parse(t.Parameters);
        try { return JsonSchemaCompiler.Compile(doc.RootElement); }
        catch (GrammarException e) { throw ApiException.BadRequest($"tools[{index}].function.parameters", e.Message, "unsupported_value"); }
    }
}
