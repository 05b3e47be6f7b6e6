using System.Globalization;

namespace MoeCluster.Model.Training;

/// <summary>loss.csv: one row per training step; held-out columns are filled on evaluation steps and empty otherwise.
/// Flushed every row so a running job can be plotted.</summary>
public sealed class LossLog : IDisposable
{
    public const string Header = "step,lr,train_loss,train_ce,aux_loss,heldout_loss,heldout_ppl,elapsed_s";
    readonly StreamWriter writer;

    public LossLog(string path)
    {
        writer = new StreamWriter(path, append: false) { AutoFlush = true };
        writer.WriteLine(Header);
    }

    public void Write(int step, double lr, double trainLoss, double trainCe, double aux, PerplexityResult? heldOut, double elapsedSeconds)
    {
        string F(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
        writer.WriteLine(string.Join(',', step.ToString(CultureInfo.InvariantCulture), F(lr), F(trainLoss), F(trainCe), F(aux),
            heldOut is null ? "" : F(heldOut.MeanLoss), heldOut is null ? "" : F(heldOut.Perplexity), F(elapsedSeconds)));
    }

    public void Dispose() => writer.Dispose();
}
