using System.Text;
using MoeCluster.Bench.Report;
using MoeCluster.Model;
using MoeCluster.Model.Layers;
using static TorchSharp.torch;

namespace MoeCluster.Bench.ModelCore;

/// <summary>Where a prefill step's time goes (<c>profile --prefill N</c>): N prompts of 128 tokens in one step, the
/// layer's public pieces run one by one as <c>DecoderLayer.Forward</c> composes them, each under its own stopwatch.
/// The q/k/v and o projections are timed apart on the same normalised input, so "attention core" (rotary, KV-cache
/// writes, scores, softmax, P·V) is the attention call less those. Parts are medians over steps of per-step totals.</summary>
public sealed record PrefillProfile(ScalarType DType, int Sequences, IReadOnlyList<(string Part, double Ms)> Parts, int Steps)
{
    public static readonly string[] PartNames =
        ["embed", "norms + residuals", "q/k/v projections", "attention core", "o projection", "router", "experts", "combine", "LM head"];

    public double TotalMs => Parts.Sum(p => p.Ms);

    public static PrefillProfile Measure(MoeTransformer model, int sequences, int promptTokens, int steps, Random random)
    {
        var config = model.Config;
        var caches = model.CreateCaches(sequences, promptTokens);
        try
        {
            var times = new StepPartTimes(PartNames);
            var layout = new StepLayout(Enumerable.Range(0, sequences).Select(s => new SequenceSegment(s, 0, promptTokens)).ToArray());
            using var tokens = tensor(Enumerable.Range(0, sequences * promptTokens).Select(_ => (long)random.Next(config.VocabSize)).ToArray(), ScalarType.Int64);
            using var _ = no_grad();
            for (int step = -1; step < steps; step++)   // one untimed step first
            {
                using var scope = NewDisposeScope();
                using var stepContext = StepContext.Create(layout, model.Rotary, config, CPU);
                T Time<T>(string part, Func<T> body) => times.Time(part, body);

                var x = Time("embed", () => model.Embed(tokens));
                for (int l = 0; l < config.NumLayers; l++)
                {
                    var layer = model.Layers[l];
                    var moe = layer.Moe ?? throw new InvalidOperationException($"layer {l} is dense; the profile expects MoE layers only");
                    var a = layer.self_attn;
                    var input = x;
                    var normed = Time("norms + residuals", () => layer.input_layernorm.forward(input));
                    Time("q/k/v projections", () => (a.q_proj.forward(normed), a.k_proj.forward(normed), a.v_proj.forward(normed)));
                    var attended = zeros([normed.shape[0], a.o_proj.weight.shape[1]], normed.dtype);
                    Time("o projection", () => a.o_proj.forward(attended));
                    var attn = Time("attention core", () => a.Forward(normed, stepContext, caches[l]));
                    var (h, n) = Time("norms + residuals", () => { var hh = input + attn; return (hh, layer.post_attention_layernorm.forward(hh)); });
                    using var groups = Time("router", () => moe.Route(n));
                    var outputs = Time("experts", () => moe.ExpertOutputs(n, groups));
                    var combined = Time("combine", () => MoeBlock.Combine(n, groups, outputs, moe.SharedOutput(n)));
                    x = Time("norms + residuals", () => h + combined);
                }
                times.Subtract("attention core", times["q/k/v projections"] + times["o projection"]);   // the call includes them
                var logits = Time("LM head", () => model.Head.Logits(x, layout));
                times.EndStep(keep: step >= 0);
            }
            return new PrefillProfile(model.Options.DType, sequences, times.Medians(), steps);
        }
        finally { foreach (var c in caches) c.Dispose(); }
    }

    public static string Markdown(IReadOnlyList<PrefillProfile> profiles)
    {
        var md = new StringBuilder();
        var p0 = profiles[0];
        md.AppendLine($"#### Where a prefill step goes: {p0.Sequences}×{BenchSmall.PromptTokens} (`profile --prefill {p0.Sequences}`; median over {p0.Steps} steps; ms per step, all {BenchSmall.Config.NumLayers} layers)");
        md.AppendLine();
        md.AppendLine("| Part | " + string.Join(" | ", profiles.Select(p => $"{ModelCoreReport.DTypeName(p.DType)} ms | share")) + " |");
        md.AppendLine("|---|" + string.Concat(profiles.Select(_ => "---:|---:|")));
        foreach (var part in PartNames)
            md.AppendLine($"| {part} | " + string.Join(" | ", profiles.Select(p =>
            {
                double ms = p.Parts.First(x => x.Part == part).Ms;
                return $"{ms:0.00} | {ms / p.TotalMs:P0}";
            })) + " |");
        md.AppendLine("| sum of parts | " + string.Join(" | ", profiles.Select(p => $"{p.TotalMs:0.00} | 100%")) + " |");
        return md.ToString();
    }
}
