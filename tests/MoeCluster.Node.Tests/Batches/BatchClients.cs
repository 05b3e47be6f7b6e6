using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MoeCluster.TestSupport;
using OpenAI;
using OpenAI.Batch;
using OpenAI.Files;

#pragma warning disable OPENAI001 // the Batch client is marked experimental by the SDK

namespace MoeCluster.Node.Tests.Batches;

/// <summary>The official OpenAI .NET client's file and batch calls against one gateway.</summary>
public sealed class BatchClients(Uri gateway, string key = "unused")
{
    readonly OpenAIClientOptions options = new() { Endpoint = new Uri(gateway, "v1") };
    public OpenAIFileClient Files => new(new ApiKeyCredential(key), options);
    public BatchClient Batches => new(new ApiKeyCredential(key), new BatchClientOptions { Endpoint = options.Endpoint });

    public async Task<OpenAIFile> UploadAsync(IEnumerable<string> lines) =>
        await Files.UploadFileAsync(BinaryData.FromString(string.Join("\n", lines) + "\n"), "input.jsonl", FileUploadPurpose.Batch);

    public async Task<JsonNode> CreateAsync(string inputFileId, string endpoint = "/v1/chat/completions", object? metadata = null)
    {
        var body = BinaryContent.Create(BinaryData.FromObjectAsJson(new { input_file_id = inputFileId, endpoint, completion_window = "24h", metadata }));
        var operation = await Batches.CreateBatchAsync(body, waitUntilCompleted: false);
        return JsonNode.Parse(operation.GetRawResponse().Content.ToString())!;
    }

    public async Task<JsonNode> CancelAsync(string batchId)
    {
        var operation = await CreateBatchOperation.RehydrateAsync(Batches, batchId);
        ClientResult result = await operation.CancelAsync(new RequestOptions());
        return JsonNode.Parse(result.GetRawResponse().Content.ToString())!;
    }

    public async Task<JsonNode> GetAsync(string batchId)
    {
        ClientResult result = await Batches.GetBatchAsync(batchId, new RequestOptions());
        return JsonNode.Parse(result.GetRawResponse().Content.ToString())!;
    }

    public async Task<JsonNode> WaitUntilEndedAsync(string batchId, TimeSpan timeout)
    {
        JsonNode? last = null;
        await Poll.UntilAsync(async () =>
        {
            last = await GetAsync(batchId);
            return (string)last["status"]! is "completed" or "failed" or "cancelled" or "expired";
        }, timeout, $"batch {batchId} to end");
        return last!;
    }

    public async Task<List<JsonNode>> DownloadLinesAsync(string fileId)
    {
        BinaryData content = await Files.DownloadFileAsync(fileId);
        return content.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
    }

    /// <summary>A completion line with a token-id prompt (works on checkpoints without a tokenizer).</summary>
    public static string CompletionLine(string customId, string model, int[] prompt, int maxTokens = 4) => JsonSerializer.Serialize(new
    {
        custom_id = customId, method = "POST", url = "/v1/completions",
        body = new { model, prompt, max_tokens = maxTokens, temperature = 0 },
    });

    public static string ChatLine(string customId, string model, string content, int maxTokens = 4) => JsonSerializer.Serialize(new
    {
        custom_id = customId, method = "POST", url = "/v1/chat/completions",
        body = new { model, messages = new[] { new { role = "user", content } }, max_tokens = maxTokens, temperature = 0 },
    });
}
