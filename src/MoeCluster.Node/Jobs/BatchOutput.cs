using System.Text;
using System.Text.Json.Nodes;

namespace MoeCluster.Node.Jobs;

/// <summary>A batch's output and error files, made from the job's persisted results on demand (nothing is stored
/// twice), in OpenAI's line format: <c>{"id","custom_id","response":{"status_code","request_id","body"},"error"}</c>.
/// Successful lines go to the output file; lines answered with an error status to the error file (response carries
/// the status and the error body); lines that never ran (cancelled, expired) to the error file with <c>error</c> set.</summary>
public static class BatchOutput
{
    public const string OutputPrefix = "file-out-";
    public const string ErrorPrefix = "file-err-";

    public static string OutputFileId(string jobId) => OutputPrefix + jobId;
    public static string ErrorFileId(string jobId) => ErrorPrefix + jobId;

    /// <summary>The job a generated file id belongs to and whether it is the error file; null for any other id.</summary>
    public static (string JobId, bool Errors)? Parse(string fileId) =>
        fileId.StartsWith(OutputPrefix, StringComparison.Ordinal) ? (fileId[OutputPrefix.Length..], false)
        : fileId.StartsWith(ErrorPrefix, StringComparison.Ordinal) ? (fileId[ErrorPrefix.Length..], true)
        : null;

    public static byte[] Content(JobResults results, bool errors)
    {
        var text = new StringBuilder();
        foreach (var stored in results.Lines)
        {
            var line = JsonNode.Parse(stored)!.AsObject();
            int index = (int)line["line"]!;
            int status = line["status_code"] is { } s ? (int)s : line["error"] is null ? 200 : 400;
            bool isError = line["response"] is null;
            if (isError != errors) continue;
            string requestId = $"req_{results.Status.Id}_{index}";
            JsonNode? response;
            JsonNode? error = null;
            if (!isError) response = new JsonObject { ["status_code"] = status, ["request_id"] = requestId, ["body"] = line["response"]!.DeepClone() };
            else if (status is 408 or 499)   // never ran: expired or cancelled
            {
                response = null;
                error = new JsonObject { ["code"] = line["error"]?["code"]?.DeepClone(), ["message"] = line["error"]?["message"]?.DeepClone() };
            }
            else response = new JsonObject { ["status_code"] = status, ["request_id"] = requestId, ["body"] = new JsonObject { ["error"] = line["error"]!.DeepClone() } };
            var output = new JsonObject
            {
                ["id"] = $"batch_req_{results.Status.Id}_{index}",
                ["custom_id"] = line["custom_id"]?.DeepClone(),
                ["response"] = response,
                ["error"] = error,
            };
            text.Append(output.ToJsonString()).Append('\n');
        }
        return Encoding.UTF8.GetBytes(text.ToString());
    }
}
