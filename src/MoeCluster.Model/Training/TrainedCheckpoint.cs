using MoeCluster.Model.Checkpoints;
using static TorchSharp.torch;

namespace MoeCluster.Model.Training;

/// <summary>Writes a trained model in the Hugging Face layout <see cref="MoeTransformer.Load"/> reads: config.json,
/// model.safetensors (parameter names are checkpoint names) and generation_config.json. The tokenizer files are written
/// before training by <see cref="TrainingTokenizer"/>.</summary>
public static class TrainedCheckpoint
{
    public static void Save(MoeTransformer model, string directory, ScalarType storeAs, int endOfTextId)
    {
        Directory.CreateDirectory(directory);
        model.Config.Save(directory);
        using (no_grad())
            SafetensorsWriter.Write(Path.Combine(directory, "model.safetensors"), ModuleWeights.Named(model), storeAs,
                new Dictionary<string, string> { ["format"] = "pt" });
        TrainingTokenizer.WriteGenerationConfig(directory, endOfTextId);
    }
}
