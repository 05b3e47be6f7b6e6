namespace MoeCluster.Model.Checkpoints;

/// <summary>
/// A checkpoint file, index or tensor that cannot be used. The message names the file and, where one is involved,
/// the tensor, so the user knows what to fix or re-download.
/// </summary>
public sealed class CheckpointException : Exception
{
    public CheckpointException(string message, string? filePath = null, string? tensorName = null, Exception? inner = null)
        : base(message, inner)
    {
        FilePath = filePath;
        TensorName = tensorName;
    }

    /// <summary>The safetensors file, index file or directory at fault.</summary>
    public string? FilePath { get; }

    /// <summary>The tensor involved, when the problem concerns one.</summary>
    public string? TensorName { get; }
}
