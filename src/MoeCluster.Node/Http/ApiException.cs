using System.Text.Json.Serialization;

namespace MoeCluster.Node.Http;

/// <summary>A request the API refuses, answered as OpenAI does:
/// <c>{"error":{"message","type","param","code"}}</c> with <see cref="Status"/>.</summary>
public sealed class ApiException(int status, string message, string? param = null, string? code = null, string type = ApiException.InvalidRequest)
    : Exception(message)
{
    public const string InvalidRequest = "invalid_request_error";

    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string? Code { get; } = code;
    public string Type { get; } = type;

    public ApiError ToError() => new(new ApiErrorBody(Message, Type, Param, Code));

    public static ApiException BadRequest(string param, string message, string code = "invalid_value") => new(400, message, param, code);
    public static ApiException MissingField(string param) => new(400, $"'{param}' is required", param, "missing_required_parameter");
    public static ApiException WrongType(string param, string expected) => new(400, $"'{param}' must be {expected}", param, "invalid_type");
}

public sealed record ApiError([property: JsonPropertyName("error")] ApiErrorBody Error);

public sealed record ApiErrorBody(
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("param")] string? Param,
    [property: JsonPropertyName("code")] string? Code);
