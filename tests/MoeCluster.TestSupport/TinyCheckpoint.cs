using MoeCluster.Model;
using MoeCluster.Model.Checkpoints;
using static TorchSharp.torch;

namespace MoeCluster.TestSupport;

/// <summary>Writes a model as a real Hugging Face checkpoint directory (config.json + safetensors).</summary>
public static class TinyCheckpoint
{
    public static string Write(MoeTransformer model, ScalarType? storeAs = null, bool sharded = false, string? directory = null)
    {
        var dir = directory ?? Path.Combine(Path.GetTempPath(), "moecluster-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        (model.Config with { TorchDtype = storeAs == ScalarType.BFloat16 ? "bfloat16" : "float32" }).Save(dir);
        var tensors = ModuleWeights.Named(model).ToList();
        if (sharded) SafetensorsWriter.WriteSharded(dir, tensors, maxShardBytes: 40_000, storeAs);
        else SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), tensors, storeAs);
        return dir;
    }
}
