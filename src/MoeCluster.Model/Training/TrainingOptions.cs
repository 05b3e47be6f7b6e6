namespace MoeCluster.Model.Training;

/// <summary>Everything <c>moecluster train</c> needs: where the text is, the model shape, and the optimisation
/// settings. Defaults train the small Mixtral-layout model shipped in <c>models/moe-tiny-fortunes</c>.</summary>
public sealed record TrainingOptions
{
    /// <summary>UTF-8 text files to train on (<c>--data</c>, repeatable). A file whose lines include a lone "%" is read
    /// as a fortune file (one document between "%" lines); any other file is split into documents at blank lines.</summary>
    public required IReadOnlyList<string> DataFiles { get; init; }

    /// <summary>Directory that receives the Hugging Face checkpoint (config.json, model.safetensors, tokenizer.json,
    /// tokenizer_config.json, generation_config.json), loss.csv, eval.json and the held-out documents (<c>--output</c>).</summary>
    public required string OutputDirectory { get; init; }

    /// <summary>Tokenizer vocabulary size including the end-of-text token; a byte-level BPE tokenizer of this size is
    /// trained on the training split (<c>--vocab-size</c>, at least 257).</summary>
    public int VocabSize { get; init; } = 2048;

    /// <summary>Model width D (<c>--hidden</c>); must be a multiple of <see cref="Heads"/>.</summary>
    public int Hidden { get; init; } = 128;

    /// <summary>Decoder layers (<c>--layers</c>).</summary>
    public int Layers { get; init; } = 4;

    /// <summary>Attention heads (<c>--heads</c>).</summary>
    public int Heads { get; init; } = 4;

    /// <summary>Key/value heads for grouped-query attention (<c>--kv-heads</c>); must divide <see cref="Heads"/>.</summary>
    public int KvHeads { get; init; } = 2;

    /// <summary>Routed experts per layer (<c>--experts</c>).</summary>
    public int Experts { get; init; } = 8;

    /// <summary>Experts each token is routed to (<c>--top-k</c>).</summary>
    public int TopK { get; init; } = 2;

    /// <summary>Hidden width of one expert's SwiGLU MLP (<c>--intermediate</c>).</summary>
    public int Intermediate { get; init; } = 256;

    /// <summary>Tokens per training sequence (<c>--seq-len</c>); documents are packed end to end with EOS between them.</summary>
    public int SeqLen { get; init; } = 128;

    /// <summary>Sequences per optimiser step (<c>--batch-size</c>).</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>Optimiser steps (<c>--steps</c>).</summary>
    public int Steps { get; init; } = 800;

    /// <summary>Peak learning rate of AdamW, reached after <see cref="WarmupSteps"/> and decayed to a tenth by a cosine
    /// (<c>--lr</c>).</summary>
    public double LearningRate { get; init; } = 3e-3;

    /// <summary>Linear warm-up steps (<c>--warmup-steps</c>).</summary>
    public int WarmupSteps { get; init; } = 50;

    /// <summary>AdamW decoupled weight decay, applied to matrices only (norm scales are not decayed) (<c>--weight-decay</c>).</summary>
    public double WeightDecay { get; init; } = 0.1;

    /// <summary>Gradient clipping: maximum global L2 norm (<c>--clip-norm</c>).</summary>
    public double ClipNorm { get; init; } = 1.0;

    /// <summary>Coefficient of the Switch-style load-balancing loss added to the language-model loss (<c>--aux-loss</c>).</summary>
    public double AuxLossCoefficient { get; init; } = 0.01;

    /// <summary>Every n-th document (counting from the n-th) is held out for evaluation (<c>--held-out-every</c>).</summary>
    public int HeldOutEvery { get; init; } = 20;

    /// <summary>Steps between held-out evaluations during training (<c>--eval-every</c>).</summary>
    public int EvalEvery { get; init; } = 50;

    /// <summary>Held-out sequences used by the periodic evaluation and recorded as the fixed "subset" in eval.json
    /// (the final evaluation uses the whole held-out split) (<c>--eval-sequences</c>).</summary>
    public int EvalSequences { get; init; } = 32;

    /// <summary>Seed for weight initialisation and batch order; the same seed and data give the same model (<c>--seed</c>).</summary>
    public int Seed { get; init; } = 1234;

    /// <summary>CPU threads TorchSharp may use (<c>--threads</c>); 0 keeps libtorch's default.</summary>
    public int Threads { get; init; } = 2;

    /// <summary>Train the dense baseline instead (<c>--dense</c>): one expert, top-1, with intermediate width
    /// <see cref="TopK"/> × <see cref="Intermediate"/>, so each token uses the same number of parameters as the MoE model.</summary>
    public bool Dense { get; init; }

    /// <summary>Dtype floating-point weights are stored in: "bfloat16" (half the size) or "float32" (<c>--save-dtype</c>).</summary>
    public string SaveDType { get; init; } = "bfloat16";

    /// <summary>Training steps between progress lines in the log (<c>--log-every</c>).</summary>
    public int LogEvery { get; init; } = 10;

    /// <summary>Checks every setting before any work starts, naming the option that is wrong.</summary>
    public void Validate()
    {
        if (DataFiles.Count == 0) throw new ArgumentException("--data: give at least one text file to train on");
        foreach (var f in DataFiles)
            if (!File.Exists(f)) throw new FileNotFoundException($"--data: file {f} does not exist", f);
        if (string.IsNullOrWhiteSpace(OutputDirectory)) throw new ArgumentException("--output: give a directory for the checkpoint");
        if (VocabSize < 257) throw new ArgumentException($"--vocab-size must be at least 257 (256 byte symbols plus end-of-text); got {VocabSize}");
        Positive(Hidden, "--hidden"); Positive(Layers, "--layers"); Positive(Heads, "--heads"); Positive(KvHeads, "--kv-heads");
        Positive(Experts, "--experts"); Positive(TopK, "--top-k"); Positive(Intermediate, "--intermediate");
        Positive(SeqLen, "--seq-len"); Positive(BatchSize, "--batch-size"); Positive(Steps, "--steps");
        if (HeldOutEvery < 2) throw new ArgumentException($"--held-out-every must be at least 2; got {HeldOutEvery}");
        Positive(EvalEvery, "--eval-every");
        Positive(EvalSequences, "--eval-sequences"); Positive(LogEvery, "--log-every");
        if (Hidden % Heads != 0) throw new ArgumentException($"--hidden ({Hidden}) must be a multiple of --heads ({Heads})");
        if ((Hidden / Heads) % 2 != 0) throw new ArgumentException($"head dim --hidden/--heads ({Hidden / Heads}) must be even for rotary embeddings");
        if (Heads % KvHeads != 0) throw new ArgumentException($"--heads ({Heads}) must be a multiple of --kv-heads ({KvHeads})");
        if (TopK > Experts) throw new ArgumentException($"--top-k ({TopK}) cannot exceed --experts ({Experts})");
        if (!(LearningRate > 0)) throw new ArgumentException($"--lr must be positive, got {LearningRate}");
        if (WarmupSteps < 0) throw new ArgumentException($"--warmup-steps must be 0 or more, got {WarmupSteps}");
        if (WeightDecay < 0) throw new ArgumentException($"--weight-decay must be 0 or more, got {WeightDecay}");
        if (!(ClipNorm > 0)) throw new ArgumentException($"--clip-norm must be positive, got {ClipNorm}");
        if (AuxLossCoefficient < 0) throw new ArgumentException($"--aux-loss must be 0 or more, got {AuxLossCoefficient}");
        if (Threads < 0) throw new ArgumentException($"--threads must be 0 (libtorch default) or more, got {Threads}");
        _ = StorageType;
    }

    internal TorchSharp.torch.ScalarType StorageType => SaveDType.ToLowerInvariant() switch
    {
        "bfloat16" or "bf16" => TorchSharp.torch.ScalarType.BFloat16,
        "float32" or "fp32" or "f32" => TorchSharp.torch.ScalarType.Float32,
        _ => throw new ArgumentException($"--save-dtype '{SaveDType}' is not supported; supported: bfloat16, float32"),
    };

    /// <summary>The Mixtral-layout config these options describe (the dense baseline when <see cref="Dense"/>).</summary>
    public ModelConfig ToModelConfig(int endOfTextId) => new()
    {
        Architecture = Architecture.Mixtral,
        VocabSize = VocabSize,
        HiddenSize = Hidden,
        NumLayers = Layers,
        NumHeads = Heads,
        NumKvHeads = KvHeads,
        HeadDim = Hidden / Heads,
        IntermediateSize = Dense ? TopK * Intermediate : Intermediate,
        ExpertIntermediateSize = Dense ? TopK * Intermediate : Intermediate,
        NumExperts = Dense ? 1 : Experts,
        TopK = Dense ? 1 : TopK,
        NormTopKProb = true,
        RmsNormEps = 1e-5,
        RopeTheta = 10000,
        // Trained on SeqLen-token windows; rotary tables for longer prompts are still built, quality beyond SeqLen is untested.
        MaxPositionEmbeddings = Math.Max(1024, SeqLen),
        BosTokenId = endOfTextId,
        EosTokenIds = [endOfTextId],
        TorchDtype = StorageType == TorchSharp.torch.ScalarType.BFloat16 ? "bfloat16" : "float32",
    };

    static void Positive(int value, string option)
    {
        if (value <= 0) throw new ArgumentException($"{option} must be positive; got {value}");
    }
}
