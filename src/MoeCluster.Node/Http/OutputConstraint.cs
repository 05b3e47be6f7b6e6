using MoeCluster.Model.Generation;
using MoeCluster.Model.Tokenization;

namespace MoeCluster.Node.Http;

/// <summary>The token constraint a request's output needs: a JSON grammar for response_format json_object/json_schema,
/// the tool-call format for tool_choice required or a named function; null for free text.</summary>
public static class OutputConstraint
{
    public static Func<ITokenConstraint>? For(CompletionRequest r, ModelTokenizer? tokenizer, int vocab, IReadOnlySet<int> stopIds)
    {
        if (r.ResponseFormat.Kind != ResponseFormatKind.Text)
            throw ApiException.BadRequest("response_format.type", "structured output is not implemented yet", "unsupported_value");
        if (r.ToolChoice.Mode is ToolChoiceMode.Required or ToolChoiceMode.Named)
            throw ApiException.BadRequest("tool_choice", "forced tool calls are not implemented yet", "unsupported_value");
        return null;
    }
}
